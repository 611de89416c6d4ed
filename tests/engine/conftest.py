"""A real PulseAudio server with a null sink, for tests of sounddevice capture and playback."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def pulse_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Environment for processes that should see PulseAudio's null sink as speaker and mic."""
    assert shutil.which("pulseaudio"), "pulseaudio is not installed (apt-get install pulseaudio)"
    root = tmp_path_factory.mktemp("pulse")
    (root / "home").mkdir()
    (root / "xdg").mkdir(mode=0o700)
    env = {**os.environ, "HOME": str(root / "home"), "XDG_RUNTIME_DIR": str(root / "xdg")}
    env.pop("PULSE_SERVER", None)
    subprocess.run(
        [
            "pulseaudio",
            "-D",
            "-n",
            "--exit-idle-time=-1",
            "--disallow-exit",
            f"--log-target=file:{root / 'pulse.log'}",
            "--load=module-native-protocol-unix",
            "--load=module-null-sink sink_name=tcall_null rate=48000",
            "--load=module-always-sink",
        ],
        env=env,
        check=True,
        timeout=30,
    )
    deadline = time.monotonic() + 10
    while subprocess.run(["pactl", "info"], env=env, capture_output=True).returncode != 0:
        assert time.monotonic() < deadline, Path(root / "pulse.log").read_text()
        time.sleep(0.05)
    subprocess.run(["pactl", "set-default-sink", "tcall_null"], env=env, check=True)
    subprocess.run(["pactl", "set-default-source", "tcall_null.monitor"], env=env, check=True)
    yield env
    subprocess.run(["pulseaudio", "--kill"], env=env, timeout=30)
