"""`tcall serve` as a real process: listening line, delivery, clean stop, one-line errors, no traces."""

from __future__ import annotations

import re
import signal
import socket
from collections.abc import Callable
from pathlib import Path

import nacl.signing
import pytest

from tcall.engine.errors import ExitCode
from tcall.engine.relay.client import RelayClient
from tcall.tui.cli import main
from tests.support.relays import ServeProcess, free_port


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_serve_relays_then_stops_cleanly(
    serve: Callable[..., ServeProcess], tcall_home: Path, signum: signal.Signals
) -> None:
    relay = serve("--hold-seconds", "5")
    assert re.fullmatch(r"ws://127\.0\.0\.1:\d+", relay.url)
    a = await RelayClient.connect(relay.url, nacl.signing.SigningKey.generate())
    b = await RelayClient.connect(relay.url, nacl.signing.SigningKey.generate())
    await a.send(b.mailbox, b"through a real relay process")
    assert await b.receive() == b"through a real relay process"
    await a.close()
    await b.close()
    relay.proc.send_signal(signum)
    assert relay.proc.wait(10) == 0
    _, stderr = relay.proc.communicate()
    assert "Traceback" not in stderr
    # Counts and errors only: no mailbox ever reaches the log.
    assert a.mailbox not in stderr and b.mailbox not in stderr
    assert list(tcall_home.iterdir()) == []


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
