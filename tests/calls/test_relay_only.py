"""relay_only: all media goes through a real coturn, and the peer never sees our host address."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tcall.engine.identity import load_identity
from tcall.engine.relay.protocol import mailbox_id
from tests.support import services
from tests.support.hostile import HostileRelay, peek
from tests.support.sessions import candidates
from tests.support.users import User

USER, PASSWORD = "tcall", "s3cret"


@pytest.fixture
def coturn(tmp_path: Path) -> Iterator[int]:
    with services.coturn(tmp_path, USER, PASSWORD) as port:
        yield port


def test_relay_only_call_goes_through_turn_and_hides_host_addresses(
    tmp_path: Path, coturn: int
) -> None:
    with HostileRelay() as relay:  # an honest relay that lets the test read what bob receives
        alice = User("alice", tmp_path / "alice", relay.url)
        bob = User("bob", tmp_path / "bob", relay.url)
        alice.add(bob)
        bob.add(alice)
        bob.set("answer_with_camera", "on")
        for user in (alice, bob):
            user.set("turn_servers", f"turn://{USER}:{PASSWORD}@127.0.0.1:{coturn}")
            user.set("relay_only", "on")
        listener = bob.listen("--auto-answer", "--once")
        code, out, err = alice.call("bob", "--duration", "4", "--connect-timeout", "20")
        assert code == 0, err
        assert listener.finish() == 0
        routes = {e["route"] for e in out if e["event"] == "stats"}
        assert routes == {"relay/relay"}
        assert out[-1]["frames_received"] > 30

        bob_identity = load_identity(bob.home / "identity.key")
        to_bob = [
            r.payload for r in relay.received if r.to_mailbox == mailbox_id(bob_identity.public_key)
        ]
        offers = [m for m in (peek(bob_identity, p) for p in to_bob) if m and m.kind == "offer"]
        assert len(offers) == 1 and offers[0].sdp is not None
        offered = candidates(offers[0].sdp)
        assert offered and all("typ relay" in c for c in offered)
        assert not any("typ host" in c or "typ srflx" in c for c in offered)
