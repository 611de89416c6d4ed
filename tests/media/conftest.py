"""A real PulseAudio server with a null sink, for tests of sounddevice capture and playback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.services import pulseaudio


@pytest.fixture(scope="session")
def pulse_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Environment for processes that should see PulseAudio's null sink as speaker and mic."""
    with pulseaudio(tmp_path_factory.mktemp("pulse")) as env:
        yield env
