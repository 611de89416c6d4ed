"""sounddevice against a real PulseAudio null sink: what the speaker plays, the monitor hears."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests import support
from tests.support.cli import TCALL

SCRIPT = Path(support.__file__).with_name("loopback_audio.py")


@pytest.mark.parametrize("frequency", [440.0, 1000.0])
def test_tone_played_is_captured_at_its_frequency(
    pulse_env: dict[str, str], frequency: float
) -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(frequency)],
        capture_output=True,
        text=True,
        timeout=60,
        env=pulse_env,
    )
    assert result.returncode == 0, result.stderr
    heard = json.loads(result.stdout.strip().splitlines()[-1])
    assert heard["rms"] > 1000
    assert abs(heard["peak_hz"] - frequency) < 5


def test_devices_lists_the_pulse_devices(pulse_env: dict[str, str]) -> None:
    result = subprocess.run(
        [TCALL, "devices", "--json"], capture_output=True, text=True, timeout=30, env=pulse_env
    )
    assert result.returncode == 0, result.stderr
    kinds = {d["kind"] for d in json.loads(result.stdout)}
    assert {"microphone", "speaker"} <= kinds


def test_devices_says_plainly_when_there_are_none() -> None:
    result = subprocess.run(
        [TCALL, "devices"],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("none found") == 3
