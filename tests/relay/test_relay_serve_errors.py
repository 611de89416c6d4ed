"""`tcall serve` in-process: what cannot be served is one line with its exit code."""

from __future__ import annotations

import socket

import pytest

from tcall.engine.errors import ExitCode
from tcall.tui.cli import main
from tests.support.relays import free_port


def test_port_in_use_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert err.startswith("tcall: error: cannot listen on 127.0.0.1:") and err.count("\n") == 1


def test_unreachable_redis_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"redis://127.0.0.1:{free_port()}"
    assert main(["serve", "--port", "0", "--redis", url]) == ExitCode.CONFIG
    err = capsys.readouterr().err
    assert err.startswith(f"tcall: error: cannot use Redis at {url}") and err.count("\n") == 1
