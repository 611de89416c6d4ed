"""`tcall call` refuses bad input and a missing camera in one line with its exit code, before it
opens a socket or starts anything: the CLI runs in-process here."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.support.cli import run_in_process


def run_tcall(*args: str) -> subprocess.CompletedProcess[str]:
    return run_in_process(Path(os.environ["TCALL_HOME"]), *args)


def test_missing_camera_is_one_line_with_its_exit_code() -> None:
    result = run_tcall("call", "echo", "--video", "camera:7", "--audio", "none")
    assert result.returncode == 3
    assert result.stderr.strip().splitlines() == [
        "tcall: error: no camera: /dev/video7 does not exist"
    ]
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--video", "webcam"], "unknown video source 'webcam'"),
        (
            ["--video", "none", "--audio", "file:/nonexistent.wav"],
            "audio file not found: /nonexistent.wav",
        ),
        (["--resolution", "big"], "bad --resolution 'big'"),
        (["--codec", "av1"], "Invalid value for '--codec'"),
    ],
)
def test_bad_input_is_one_line(args: list[str], message: str) -> None:
    result = run_tcall("call", "echo", *args)
    assert result.returncode in (2, 3)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
