"""The ICE frame (relay -> client), sans-I/O: the client takes the relay for an adversary, so every
malformed, oversize or surprising frame is a clean RelayProtocolError saying what was wrong."""

from __future__ import annotations

import json
from typing import Any

import nacl.signing
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tcall.engine.relay import protocol
from tcall.engine.relay.protocol import (
    ClientConnection,
    ErrorCode,
    IceServer,
    IceServers,
    RelayProtocolError,
    ServerConnection,
    check_ice_url,
    decode_ice,
    encode_ice,
)
from tests.support.fuzz import examples

KEY = nacl.signing.SigningKey(bytes(range(32)))
TURN = IceServer(
    ("turn:relay.example:3478?transport=udp", "turns:relay.example:5349"),
    "1700003600:5f1c0ffee0ddba11",
    "hsl+vZSDYPjIIg6pcRU9V8FyAgI=",
)
STUN = IceServer(("stun:relay.example:3478",))


def body(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


def ice_frame(doc: Any) -> bytes:
    return bytes((protocol.Kind.ICE,)) + (doc if isinstance(doc, bytes) else body(doc))


def ready_client(ice: bool = True) -> ClientConnection:
    server, client = ServerConnection(), ClientConnection(KEY, ice=ice)
    client.receive(server.hello())
    (auth,) = client.data_to_send()
    server.receive(auth)
    assert client.receive(server.ready()) == protocol.Ready(client.mailbox)
    return client


def reason(client: ClientConnection, frame: bytes) -> str:
    with pytest.raises(RelayProtocolError) as caught:
        client.receive(frame)
    return caught.value.reason


def test_round_trip() -> None:
    frame = encode_ice((STUN, TURN), 3600)
    assert frame[0] == protocol.Kind.ICE == 7
    assert decode_ice(frame[1:]) == IceServers((STUN, TURN), 3600)
    assert decode_ice(encode_ice((), None)[1:]) == IceServers((), None)
    assert decode_ice(encode_ice((STUN,), None)[1:]) == IceServers((STUN,), None)


def test_a_credential_never_shows_in_a_repr() -> None:
    assert TURN.credential is not None and TURN.credential not in repr(TURN)
    assert TURN.credential not in repr(IceServers((TURN,), 60))


def test_client_that_asked_gets_ice_right_after_ready_then_renewals() -> None:
    client = ready_client()
    assert client.awaiting_ice
    event = client.receive(encode_ice((STUN, TURN), 3600))
    assert event == IceServers((STUN, TURN), 3600) and not client.awaiting_ice
    assert client.receive(protocol.encode_deliver(b"x")) == protocol.Delivered(b"x")
    assert client.receive(encode_ice((TURN,), 60)) == IceServers((TURN,), 60)


def test_client_that_asked_wants_ice_before_anything_else() -> None:
    client = ready_client()
    assert "where ICE servers should be" in reason(client, protocol.encode_deliver(b"x"))


def test_client_that_did_not_ask_refuses_ice() -> None:
    client = ready_client(ice=False)
    assert not client.awaiting_ice
    with pytest.raises(RelayProtocolError) as caught:
        client.receive(encode_ice((STUN,), None))
    assert caught.value.code == ErrorCode.UNEXPECTED


def test_ice_before_ready_is_refused() -> None:
    client = ClientConnection(KEY, ice=True)
    client.receive(ServerConnection().hello())
    with pytest.raises(RelayProtocolError) as caught:
        client.receive(encode_ice((STUN,), None))
    assert caught.value.code == ErrorCode.UNEXPECTED


def test_an_error_after_ready_still_reads_as_a_refusal() -> None:
    client = ready_client()
    event = client.receive(protocol.encode_error(ErrorCode.REPLACED, "again"))
    assert event == protocol.Refused(ErrorCode.REPLACED, "again")


GOOD_URLS = [
    "stun:relay.example",
    "stun:relay.example:3478",
    "stun:192.0.2.1:19302",
    "turn:relay.example:3478?transport=udp",
    "turn:relay.example:443?transport=tcp",
    "turn:203.0.113.7",
    "turns:relay.example",
    "turns:relay.example:5349?transport=tcp",
    "turn:a-b.c-d.example:65535",
]
BAD_URLS = [
    "",
    "http://relay.example",
    "stuns:relay.example",
    "turn://user:pass@relay.example:3478",
    "turn:user@relay.example",
    "turn:[::1]:3478",
    "turn:::1",
    "turn:relay.example:0",
    "turn:relay.example:65536",
    "turn:relay.example:099",
    "turn:relay.example:",
    "turn:relay.example?transport=sctp",
    "turn:relay.example?transport=udp&x=1",
    "turns:relay.example?transport=udp",
    "stun:relay.example?transport=udp",
    "turn:-relay.example",
    "turn:relay..example",
    "turn:relay.example.",
    "turn:999.1.1.1",
    "turn:1.2.3",
    "turn:relay.exam ple",
    "turn:relay.example/path",
    "turn:r\u00e9lay.example",
    "turn:relay.example\n",
    "turn:" + "a" * 64 + ".example",
    "turn:" + ".".join(["a" * 60] * 5),
    "TURN:relay.example",
]


@pytest.mark.parametrize("url", GOOD_URLS)
def test_urls_the_frame_may_carry(url: str) -> None:
    assert check_ice_url(url) == url


@pytest.mark.parametrize("url", BAD_URLS)
def test_urls_the_frame_may_not_carry(url: str) -> None:
    with pytest.raises(ValueError):
        check_ice_url(url)
    client = ready_client()
    why = reason(client, ice_frame({"servers": [{"urls": [url]}], "ttl": None}))
    assert why.startswith("bad ICE servers: ")


def entry(urls: list[Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {"urls": urls or ["turn:relay.example"], "username": "1:a", "credential": "c", **extra}


BAD_BODIES: dict[str, Any] = {
    "empty": b"",
    "not JSON": b"{servers}",
    "a list": [],
    "a string": "servers",
    "no ttl": {"servers": []},
    "no servers": {"ttl": None},
    "an extra key": {"servers": [], "ttl": None, "more": 1},
    "a duplicate key": b'{"servers":[],"ttl":null,"ttl":null}',
    "a duplicate key in an entry": b'{"servers":[{"urls":["stun:a"],"urls":["stun:b"]}],"ttl":null}',
    "servers not a list": {"servers": {}, "ttl": None},
    "nine servers": {"servers": [{"urls": ["stun:a"]}] * 9, "ttl": None},
    "an entry not an object": {"servers": ["stun:a"], "ttl": None},
    "an entry with an extra key": {"servers": [entry(extra=1)], "ttl": 60},
    "a username without credential": {
        "servers": [{"urls": ["turn:a"], "username": "u"}],
        "ttl": 60,
    },
    "urls not a list": {"servers": [{"urls": "stun:a"}], "ttl": None},
    "no urls": {"servers": [{"urls": []}], "ttl": None},
    "five urls": {"servers": [{"urls": ["stun:a"] * 5}], "ttl": None},
    "a url not a string": {"servers": [{"urls": [1]}], "ttl": None},
    "a turn URL without credentials": {"servers": [{"urls": ["turn:a"]}], "ttl": None},
    "credentials without ttl": {"servers": [entry()], "ttl": None},
    "a ttl without credentials": {"servers": [{"urls": ["stun:a"]}], "ttl": 60},
    "ttl too short": {"servers": [entry()], "ttl": 59},
    "ttl too long": {"servers": [entry()], "ttl": 7 * 86400 + 1},
    "ttl negative": {"servers": [entry()], "ttl": -3600},
    "ttl a float": {"servers": [entry()], "ttl": 3600.0},
    "ttl a bool": {"servers": [entry()], "ttl": True},
    "ttl a string": {"servers": [entry()], "ttl": "3600"},
    "ttl NaN": b'{"servers":[{"urls":["turn:a"],"username":"u","credential":"c"}],"ttl":NaN}',
    "ttl Infinity": b'{"servers":[],"ttl":Infinity}',
    "ttl huge": b'{"servers":[],"ttl":' + b"9" * 5000 + b"}",
    "a username not a string": {"servers": [entry(username=1)], "ttl": 60},
    "an empty username": {"servers": [entry(username="")], "ttl": 60},
    "a username with a space": {"servers": [entry(username="a b")], "ttl": 60},
    "a username with an escape": {"servers": [entry(username="\x1b[2J")], "ttl": 60},
    "a credential with a bidi override": {"servers": [entry(credential="a\u202eb")], "ttl": 60},
    "a credential too long": {"servers": [entry(credential="c" * 257)], "ttl": 60},
    "a raw control byte": b'{"servers":[],\x07"ttl":null}',
    "a newline": b'{"servers":[],\n"ttl":null}',
    "not ASCII": '{"servers":[],"ttl":null}\u00a0'.encode(),
    "deep nesting": b"[" * 2000 + b"]" * 2000,
    "over the size bound": b'{"servers":[],"ttl":null}' + b" " * protocol.MAX_ICE_BODY,
}


@pytest.mark.parametrize("name", BAD_BODIES)
def test_hostile_bodies_are_protocol_errors_with_a_reason(name: str) -> None:
    client = ready_client()
    with pytest.raises(RelayProtocolError) as caught:
        client.receive(ice_frame(BAD_BODIES[name]))
    assert caught.value.code == ErrorCode.MALFORMED
    assert caught.value.reason.startswith("bad ICE servers: ") and len(caught.value.reason) > 20
    assert caught.value.reason.isprintable()
    assert client.awaiting_ice  # nothing was taken from it


def test_bounds_are_inclusive() -> None:
    long_url = "turn:" + ".".join(["a" * 61] * 4)  # 5 + 4 * 61 + 3 = 252 characters
    assert len(long_url) <= protocol.MAX_ICE_FIELD
    server = {"urls": [long_url] * 4, "username": "u" * 256, "credential": "c" * 256}
    doc = {"servers": [server] * 8, "ttl": protocol.MAX_ICE_TTL}
    assert len(body(doc)) > protocol.MAX_ICE_BODY  # the byte bound holds beyond the others
    fitting = {"servers": [{"urls": ["stun:a"] * 4}] * 8, "ttl": None}
    assert len(decode_ice(body(fitting)).servers) == 8
    one = {"servers": [entry(username="u" * 256, credential="c" * 256)], "ttl": 60}
    assert decode_ice(body(one)).ttl == protocol.MIN_ICE_TTL
    padded = body({"servers": [], "ttl": None})
    padded = padded[:-1] + b" " * (protocol.MAX_ICE_BODY - len(padded)) + b"}"
    assert len(padded) == protocol.MAX_ICE_BODY and decode_ice(padded) == IceServers((), None)
    with pytest.raises(ValueError, match="4096"):
        decode_ice(padded + b" ")


def test_the_relay_cannot_encode_what_clients_refuse() -> None:
    with pytest.raises(ValueError):
        encode_ice((IceServer(("turn:a",)),), None)
    with pytest.raises(ValueError):
        encode_ice((IceServer(("http://a",)),), None)
    with pytest.raises(ValueError):
        encode_ice((TURN,), 30)


@settings(max_examples=examples(400))
@given(st.binary(max_size=300))
def test_fuzz_bodies(data: bytes) -> None:
    try:
        event = decode_ice(data)
    except ValueError as exc:
        assert str(exc)
        return
    assert isinstance(event, IceServers)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20) | st.floats(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=4,
)
FIELD = st.text(st.characters(min_codepoint=0, max_codepoint=0x7F), max_size=12) | JSON


@settings(max_examples=examples(200), deadline=None)
@given(
    st.fixed_dictionaries(
        {
            "servers": st.lists(
                st.fixed_dictionaries(
                    {"urls": st.lists(st.sampled_from(GOOD_URLS + BAD_URLS) | JSON, max_size=5)},
                    optional={"username": FIELD, "credential": FIELD},
                ),
                max_size=9,
            ),
            "ttl": st.sampled_from([None, 59, 60, 3600, 604800, 604801, True, 1.5]) | JSON,
        }
    )
)
def test_fuzz_structure(doc: dict[str, Any]) -> None:
    client = ready_client()
    try:
        event = client.receive(ice_frame(body(doc)))
    except RelayProtocolError as exc:
        assert exc.code == ErrorCode.MALFORMED
        return
    assert isinstance(event, IceServers)
    assert len(event.servers) <= protocol.MAX_ICE_SERVERS
    for server in event.servers:
        assert all(check_ice_url(url) == url for url in server.urls)
