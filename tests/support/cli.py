"""The `tcall` CLI, as the real console script in a process of its own or in-process through `main`.

A process start costs about half a second (Python, aiortc, av), so bookkeeping commands (settings,
contacts, id, history) run in-process where a test is not about the process itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tcall.engine.errors import ExitCode
from tcall.tui.cli import main

TCALL = str(Path(sys.executable).with_name("tcall"))


def loopback_env(**extra: str) -> dict[str, str]:
    """The environment for a tcall process that must only use loopback addresses."""
    env = dict(os.environ)
    env["TCALL_ICE_ADDRESSES"] = "127.0.0.1"
    env.update(extra)
    return env


def run_tcall(*args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
    """`tcall ARGS` as a process pinned to loopback ICE, with `env` added to the environment."""
    return subprocess.run(
        [TCALL, *args], capture_output=True, text=True, timeout=timeout, env=loopback_env(**env)
    )


def run_in_process(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`tcall ARGS` with TCALL_HOME=home, through `main` in this process: what the process would
    exit with and print. Not from a worker thread: it swaps sys.stdout and sys.stderr."""
    with CliRunner().isolation(env={"TCALL_HOME": str(home)}) as (out, err, _):
        code = main(list(args))
        return subprocess.CompletedProcess(
            list(args), code, out.getvalue().decode(), err.getvalue().decode()
        )


def events(stdout: str) -> list[dict[str, Any]]:
    """The JSON events of `tcall … --json`, one a line."""
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def json_output(capsys: pytest.CaptureFixture[str], argv: list[str]) -> object:
    """`main(argv)` succeeds; what it printed, parsed as JSON."""
    assert main(argv) == ExitCode.OK
    return json.loads(capsys.readouterr().out)


def error_line(capsys: pytest.CaptureFixture[str], argv: list[str], code: ExitCode) -> str:
    """`main(argv)` exits with `code` and says why in one `tcall: error:` line; that line."""
    assert main(argv) == code
    err = capsys.readouterr().err
    assert err.startswith("tcall: error: ") and err.count("\n") == 1
    return err
