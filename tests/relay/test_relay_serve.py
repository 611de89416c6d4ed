"""`tcall serve` as a real process: listening line, delivery, clean stop, no traces."""

from __future__ import annotations

import re
import signal
from collections.abc import Callable
from pathlib import Path

import nacl.signing
import pytest

from tcall.engine.relay.client import RelayClient
from tests.support.relays import ServeProcess


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
