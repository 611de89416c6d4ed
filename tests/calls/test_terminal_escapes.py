"""Text a relay or a peer chooses never reaches the terminal as control sequences (issue #12,
item 15): a relay's ERROR reason and a contact's relay URL carrying escape sequences."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tcall.engine.address import format_address
from tcall.engine.identity import Identity
from tcall.engine.relay import protocol
from tests.support.users import User

ATTACK = "\x1b]0;pwned\x07\x1bc\u202eevil"  # retitle the window, reset the terminal, reverse text
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def assert_clean(text: str) -> None:
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f\u202e]", text), repr(text)


@pytest.fixture
def refusing_relay() -> Iterator[str]:
    """A relay that accepts the WebSocket handshake and refuses at once, with a hostile reason."""
    loop = asyncio.new_event_loop()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        match = re.search(rb"sec-websocket-key:\s*(\S+)", head, re.I)
        assert match is not None
        accept = base64.b64encode(hashlib.sha1(match.group(1) + GUID).digest())
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        payload = protocol.encode_error(protocol.ErrorCode.AUTH_FAILED, ATTACK)
        writer.write(bytes((0x82, len(payload))) + payload)
        await writer.drain()
        await asyncio.sleep(0.5)
        writer.close()

    server = loop.run_until_complete(asyncio.start_server(handle, "127.0.0.1", 0))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    server.close()
    loop.run_until_complete(server.wait_closed())
    loop.close()


def test_a_relays_error_reason_is_shown_escaped(tmp_path: Path, refusing_relay: str) -> None:
    alice = User("alice", tmp_path / "alice", refusing_relay)
    bob = User("bob", tmp_path / "bob", refusing_relay)
    alice.add(bob)
    result = alice.run("call", "bob", "--video", "none", "--audio", "none", check=False)
    assert result.returncode == 6, result.stderr
    assert "\\x1b]0;pwned\\x07" in result.stderr  # shown, as text
    assert_clean(result.stderr + result.stdout)
    result = alice.run("listen", check=False)
    assert result.returncode == 6, result.stderr
    assert_clean(result.stderr + result.stdout)


def test_a_relay_url_with_control_characters_is_refused(tmp_path: Path) -> None:
    alice = User("alice", tmp_path / "alice", "")
    mallory = Identity.from_seed(b"\x07" * 32)
    hostile = format_address(mallory.public_key, "ws://relay.test:7711/" + ATTACK)
    result = alice.run("contacts", "add", "mallory", hostile, check=False)
    assert result.returncode == 2
    assert "printable ASCII" in result.stderr
    assert_clean(result.stderr + result.stdout)
