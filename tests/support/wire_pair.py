"""A ConnectionPair for the wire protocol: two identities that know each other, one shared clock.

Like h11's tests/helpers.py: messages go straight from one side's `seal_message` to the other
side's `open_message`, so tests can tamper with the bytes in between the way a relay could.
"""

from __future__ import annotations

from typing import Any

from tcall.engine.identity import Identity
from tcall.engine.wire import (
    NO_CALL_KINDS,
    Received,
    ReplayGuard,
    SenderStatus,
    open_message,
    seal_message,
)

CALL_ID = "c4ll1d0000000001"
NOW = 1_700_000_000.0

SDP = "\r\n".join(
    [
        "v=0",
        "o=- 3900000000 3900000000 IN IP4 0.0.0.0",
        "s=-",
        "t=0 0",
        "a=group:BUNDLE 0 1",
        "a=fingerprint:sha-256 AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:"
        "AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99",
        "m=audio 9 UDP/TLS/RTP/SAVPF 96",
        "c=IN IP4 127.0.0.1",
        "a=candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host",
        "a=ice-ufrag:ufA1",
        "a=ice-pwd:pwdAAAAAAAAAAAAAAAAAAAAA",
        "a=fingerprint:sha-256 11:22:33:44:55:66:77:88:99:00:AA:BB:CC:DD:EE:FF:"
        "11:22:33:44:55:66:77:88:99:00:AA:BB:CC:DD:EE:FF",
        "a=setup:actpass",
        "m=video 9 UDP/TLS/RTP/SAVPF 97",
        "c=IN IP4 127.0.0.1",
        "a=ice-ufrag:ufA1",
        "a=ice-pwd:pwdAAAAAAAAAAAAAAAAAAAAA",
        "a=fingerprint:sha-512 01:02:03",
        "",
    ]
)


class ConnectionPair:
    """Alice and Bob, each the other's contact, each with a replay guard; time is `self.now`."""

    def __init__(self) -> None:
        self.alice = Identity.from_seed(bytes(range(32)))
        self.bob = Identity.from_seed(bytes(range(32, 64)))
        self.now = NOW
        self.names = {self.alice.public_key: "alice", self.bob.public_key: "bob"}
        self.guards = {self.alice.public_key: ReplayGuard(), self.bob.public_key: ReplayGuard()}

    def other(self, identity: Identity) -> Identity:
        return self.bob if identity is self.alice else self.alice

    def lookup(self, key: bytes) -> SenderStatus:
        name = self.names.get(key)
        return SenderStatus.known(name) if name else SenderStatus.unknown()

    def seal(self, sender: Identity, kind: str, **kw: Any) -> bytes:
        call_id = kw.pop("call_id", "" if kind in NO_CALL_KINDS else CALL_ID)
        recipient = kw.pop("to", self.other(sender).public_key)
        return seal_message(sender, recipient, kind, call_id, self.now, **kw)

    def deliver(self, receiver: Identity, data: bytes, **kw: Any) -> Received:
        lookup = kw.pop("lookup", self.lookup)
        guard = self.guards[receiver.public_key]
        return open_message(receiver, data, self.now, guard, lookup, **kw)

    def send(self, sender: Identity, kind: str, **kw: Any) -> Received:
        return self.deliver(self.other(sender), self.seal(sender, kind, **kw))
