"""sounddevice against a real PulseAudio null sink: what the speaker plays, the monitor hears;
and a call that loses its audio system."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests import support
from tests.support.cli import TCALL, events
from tests.support.services import pulseaudio

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


def test_a_call_goes_on_when_the_audio_system_dies(tmp_path: Path) -> None:
    """PulseAudio killed mid-call: the speaker and the microphone each say so once, the call keeps
    its video and ends normally, and nothing prints a traceback."""
    with pulseaudio(tmp_path) as env:
        call = subprocess.Popen(
            [TCALL, "call", "echo", "--video", "pattern", "--audio", "mic"]
            + ["--duration", "8", "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**env, "TCALL_ICE_ADDRESSES": "127.0.0.1"},
        )
        assert call.stdout is not None
        before = []
        for line in call.stdout:  # until video comes back and the speaker has played a while
            before.append(line)
            if '"stats"' in line and '"fps_received": 0.0' not in line:
                break
        time.sleep(1.5)
        pid = int((tmp_path / "xdg" / "pulse" / "pid").read_text())
        os.kill(pid, signal.SIGKILL)
        killed_at = len(before)
        out, err = call.communicate(timeout=60)
    printed = events("".join(before) + out)
    assert call.returncode == 0, (err, printed)
    assert "Traceback" not in err
    notices = [e["message"] for e in printed if e["event"] == "notice"]
    assert any(n.startswith("the speaker stopped") for n in notices), notices
    assert any(n.startswith("the microphone stopped") for n in notices), notices
    after = [e for e in printed[killed_at:] if e["event"] == "stats"]
    assert len(after) >= 3 and all(s["fps_received"] > 0 for s in after[1:])  # video goes on
    assert printed[-1]["event"] == "summary" and printed[-1]["outcome"] == "answered"
