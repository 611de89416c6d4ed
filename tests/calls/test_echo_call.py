"""Real echo calls through the `tcall` command: encode, DTLS-SRTP over UDP, decode, and back."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest

from tests.support.cli import TCALL, events, loopback_env, run_tcall


@pytest.mark.parametrize("codec", ["vp8", "h264"])
def test_echo_call_delivers_frames_and_measures_latency(codec: str) -> None:
    result = run_tcall(
        "call",
        "echo",
        "--video",
        "pattern",
        "--audio",
        "sine",
        "--codec",
        codec,
        "--duration",
        "5",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    lines = events(result.stdout)
    states = [e["state"] for e in lines if e["event"] == "state"]
    assert states[:3] == ["calling", "connecting", "connected"]
    stats = [e for e in lines if e["event"] == "stats"]
    assert len(stats) >= 4
    assert all(s["resolution"] == "640x480" for s in stats[1:])
    summary = lines[-1]
    assert summary["event"] == "summary"
    assert set(summary) >= {
        "outcome",
        "frames_sent",
        "frames_received",
        "fps_received",
        "latency_ms_median",
        "latency_ms_p95",
        "setup_ms",
        "route",
    }
    assert summary["outcome"] == "answered"
    assert summary["frames_sent"] > 50
    assert summary["frames_received"] >= 0.9 * summary["frames_sent"]
    assert 0 < summary["latency_ms_median"] <= summary["latency_ms_p95"] < 2000
    assert 0 < summary["setup_ms"] < 10000
    assert summary["route"] == "host/host"


def test_human_summary_without_json() -> None:
    result = run_tcall("call", "echo", "--video", "pattern", "--audio", "none", "--duration", "2")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("call answered")
    assert "frames received" in result.stdout
    assert "connected" in result.stderr


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGHUP], ids=["ctrl-c", "sighup"])
def test_ctrl_c_or_a_closed_terminal_ends_the_call_cleanly_with_a_summary(stop: int) -> None:
    """SIGHUP (a closed terminal, a dropped SSH session, a killed tmux session) is Ctrl-C."""
    process = subprocess.Popen(
        [TCALL, "call", "echo", "--video", "pattern", "--audio", "sine"]
        + ["--duration", "30", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=loopback_env(),
    )
    assert process.stdout is not None
    deadline = time.monotonic() + 30
    for line in process.stdout:  # wait until media is flowing
        if '"stats"' in line or time.monotonic() > deadline:
            break
    process.send_signal(stop)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 130, err
    summary = events(out)[-1]
    assert summary["event"] == "summary"
    assert summary["outcome"] == "interrupted"
    assert summary["frames_received"] > 0
    assert "Traceback" not in err


def test_missing_microphone_is_one_line_with_its_exit_code() -> None:
    # No PulseAudio in this environment: PortAudio finds no input device.
    result = run_tcall(
        "call", "echo", "--video", "none", "--audio", "mic", XDG_RUNTIME_DIR="/nonexistent"
    )
    assert result.returncode == 3
    assert result.stderr.strip().splitlines() == [
        "tcall: error: no microphone: no audio input device found"
    ]


def test_the_echo_call_obeys_control_lines_on_stdin() -> None:
    """Issue #13, item 3: `tcall call echo` reads `mute`, `camera off`, `hangup` like any call."""
    args = [TCALL, "call", "echo", "--video", "pattern", "--audio", "sine", "--json"]
    with subprocess.Popen(
        args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=loopback_env()
    ) as call:
        assert call.stdin is not None and call.stdout is not None
        seen = []
        for line in call.stdout:
            seen.append(line)
            if '"stats"' in line and '"fps_received": 0.0' not in line:  # video came back
                call.stdin.write("mute\ncamera off\nhangup\n")
                call.stdin.flush()
                break
        seen += call.stdout.readlines()  # until it ends by itself, on `hangup`
        assert call.wait(30) == 0
    printed = events("".join(seen))
    assert printed[-1]["event"] == "summary" and printed[-1]["outcome"] == "answered"
    assert not [e for e in printed if e["event"] == "notice" and "unknown" in e["message"]]
