"""tcall connects to a contact's own relay only to call that contact, never just because the
contact exists (issue #12, item 9): a contact's relay learns nothing of us until we call there, and
a dead one never slows anything else down."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from tcall.engine.address import format_address
from tcall.engine.identity import Identity
from tests.support.relays import ServeProcess
from tests.support.users import User


@pytest.fixture
def other_relay() -> Iterator[tuple[str, list[object]]]:
    """A port that counts who connects to it and hangs up on them (a contact's dead relay)."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    knocks: list[object] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            knocks.append(conn.getpeername())
            conn.close()  # a dead relay: refused at once, so the call fails fast

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    yield f"ws://127.0.0.1:{server.getsockname()[1]}", knocks
    stop.set()
    thread.join(2)
    server.close()


def test_a_contact_on_another_relay_is_reached_only_when_called(
    people: tuple[User, User], relay: ServeProcess, other_relay: tuple[str, list[object]]
) -> None:
    alice, bob = people
    url, knocks = other_relay
    dave = Identity.from_seed(b"\x0d" * 32)
    alice.run("contacts", "add", "dave", format_address(dave.public_key, url))
    listener = bob.listen("--auto-answer", "--once")
    code, out, err = alice.call("bob", "--duration", "2")
    assert code == 0, err
    assert listener.finish() == 0
    assert knocks == []  # dave's relay never heard of alice
    code, out, err = alice.call("dave", "--connect-timeout", "1", "--ring-timeout", "2")
    assert code == 6 and knocks  # calling dave is what reaches his relay
