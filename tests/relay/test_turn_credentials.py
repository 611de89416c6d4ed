"""TURN REST credentials (coturn's use-auth-secret), what the relay offers whom, and the coturn
configuration `tcall serve --coturn` writes: pure functions, no network."""

from __future__ import annotations

import base64
import hashlib
import hmac
from pathlib import Path

import pytest

from tcall.engine.relay import protocol
from tcall.engine.relay.protocol import IceServer, decode_ice, encode_ice
from tcall.engine.server.coturn import DENIED_PEERS, CoturnOptions, config_lines, peer_range
from tcall.engine.server.server import RelayConfig, RelayServer
from tcall.engine.server.turn_credentials import (
    IceOffer,
    credentials_safe,
    rest_credential,
    rest_username,
)

SECRET = b"north-by-northwest-1959"


@pytest.mark.parametrize(
    ("secret", "username", "expected"),
    [
        # Both computed apart from tcall, with:
        #   printf %s USERNAME | openssl dgst -sha1 -hmac SECRET -binary | base64
        (SECRET, "1700003600:5f1c0ffee0ddba11", "hsl+vZSDYPjIIg6pcRU9V8FyAgI="),
        (b"my_secret", "1433895918506:my_username", "gKwSWE2uKuZnhCArog06lwc23/A="),
    ],
)
def test_credential_is_coturns_hmac_sha1_in_base64(
    secret: bytes, username: str, expected: str
) -> None:
    assert rest_credential(secret, username) == expected
    recomputed = hmac.new(secret, username.encode(), hashlib.sha1).digest()
    assert base64.b64decode(expected) == recomputed


def test_username_is_expiry_colon_user() -> None:
    assert rest_username(1700003600, "5f1c0ffee0ddba11") == "1700003600:5f1c0ffee0ddba11"
    with pytest.raises(ValueError):
        rest_username(1, "a:b")  # coturn takes what is before the first ':' as the expiry


def test_offer_makes_fresh_credentials_per_user() -> None:
    offer = IceOffer(("stun:relay.example:3478",), ("turn:relay.example:3478",), SECRET, 600)
    servers, ttl = offer.servers("5f1c0ffee0ddba11", 1700000000.7)
    assert ttl == 600
    stun, turn = servers
    assert stun == IceServer(("stun:relay.example:3478",))
    assert turn.urls == ("turn:relay.example:3478",)
    assert turn.username == "1700000600:5f1c0ffee0ddba11"
    assert turn.credential == rest_credential(SECRET, "1700000600:5f1c0ffee0ddba11")
    other, _ = offer.servers("0123456789abcdef", 1700000000)
    assert other[1].credential != turn.credential
    assert SECRET.decode() not in repr(offer)
    assert offer.servers("x", 0, credentials=False) == ((stun,), None)


def test_offer_refuses_what_clients_would() -> None:
    with pytest.raises(ValueError, match="secret"):
        IceOffer((), ("turn:a",))
    with pytest.raises(ValueError, match="not a stun"):
        IceOffer(("turn:a",), (), SECRET)
    with pytest.raises(ValueError, match="not a turn"):
        IceOffer((), ("stun:a",), SECRET)
    with pytest.raises(ValueError, match="at most 4"):
        IceOffer(("stun:a",) * 5)
    with pytest.raises(ValueError, match="seconds"):
        IceOffer((), ("turn:a",), SECRET, ttl=59)
    with pytest.raises(ValueError):
        IceOffer(("http://a",))


@pytest.mark.parametrize(
    ("origin", "safe"),
    [
        ("wss://relay.example:443", True),
        ("wss://203.0.113.5:7711", True),
        ("ws://127.0.0.1:7711", True),
        ("ws://127.8.9.1:7711", True),
        ("ws://[::1]:7711", True),
        ("ws://203.0.113.5:7711", False),
        ("ws://relay.example:7711", False),
        ("ws://localhost:7711", True),  # RFC 6761: loopback, and the relay checked it is
        ("ws://localhost.example:7711", False),
        ("", False),
    ],
)
def test_credentials_travel_only_over_tls_or_loopback(origin: str, safe: bool) -> None:
    assert credentials_safe(origin) is safe


def test_relay_gives_turn_credentials_only_where_they_are_safe() -> None:
    offer = IceOffer(("stun:relay.example",), ("turn:relay.example",), SECRET)
    server = RelayServer(RelayConfig(ice=offer, ice_renew=5.0))
    frame, renew = server.ice_frame("ws://203.0.113.5:7711", "0123456789abcdef")
    assert decode_ice(frame[1:]) == protocol.IceServers((IceServer(("stun:relay.example",)),), None)
    assert renew is None
    frame, renew = server.ice_frame("wss://relay.example:443", "0123456789abcdef")
    ice = decode_ice(frame[1:])
    assert ice.ttl == 3600 and ice.servers[1].username is not None and renew == 5.0
    assert RelayServer(RelayConfig(ice=offer)).ice_frame("wss://r:1", "u")[1] == 1800
    assert RelayServer().ice_frame("wss://r:1", "u") == (encode_ice((), None), None)


def test_coturn_config_is_the_safe_one(tmp_path: Path) -> None:
    lines = config_lines(
        CoturnOptions(port=3479, listen_ip="192.0.2.10", relay_ip="192.0.2.10"), "s3cret", tmp_path
    )
    for line in (
        "use-auth-secret",
        "static-auth-secret=s3cret",
        "listening-port=3479",
        "listening-ip=192.0.2.10",
        "relay-ip=192.0.2.10",
        "no-cli",
        "no-tls",
        "no-dtls",
        "no-tcp-relay",
        "no-multicast-peers",
        "no-software-attribute",
        "user-quota=10",
        "total-quota=1000",
        "max-bps=1000000",
        "userdb=:memory:",
        f"pidfile={tmp_path / 'turnserver.pid'}",
    ):
        assert line in lines
    assert [f"denied-peer-ip={peers}" for peers in DENIED_PEERS] == [
        line for line in lines if line.startswith("denied-peer-ip=")
    ]
    for private in ("10.0.0.0", "127.0.0.0", "172.16.0.0", "192.168.0.0", "169.254.0.0", "::1"):
        assert any(line.startswith(f"denied-peer-ip={private}") for line in lines)
    assert not any(line.startswith(("allowed-peer-ip", "allow-loopback", "cli-")) for line in lines)
    assert not any("external-ip" in line for line in lines)


def test_coturn_allows_only_the_peers_it_is_told(tmp_path: Path) -> None:
    options = CoturnOptions(allowed_peers=(peer_range("10.1.0.0-10.1.255.255"),))
    lines = config_lines(options, "s", tmp_path)
    assert "allowed-peer-ip=10.1.0.0-10.1.255.255" in lines
    assert "allow-loopback-peers" not in lines
    lines = config_lines(CoturnOptions(allowed_peers=("127.0.0.1",)), "s", tmp_path)
    assert "allowed-peer-ip=127.0.0.1" in lines and "allow-loopback-peers" in lines


@pytest.mark.parametrize("text", ["10.0.0.1", "10.0.0.0-10.0.0.255", "fc00::1-fc00::2", "::1"])
def test_peer_ranges(text: str) -> None:
    assert peer_range(text) == text


@pytest.mark.parametrize(
    "text", ["", "10.0.0.0/8", "10.0.0.2-10.0.0.1", "10.0.0.1-::1", "a-b", "1-2-3", "x"]
)
def test_bad_peer_ranges(text: str) -> None:
    with pytest.raises(ValueError):
        peer_range(text)


def test_readme_gives_coturn_the_lines_tcall_serve_does(tmp_path: Path) -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    shown = {line.strip() for line in readme.splitlines()}
    lines = config_lines(CoturnOptions(), "SECRET", tmp_path)
    expected = {
        line
        for line in lines
        if not line.startswith(("static-auth-secret=", "min-port", "max-port"))
        and not line.startswith(("userdb=", "pidfile=", "log-file=", "simple-log"))
    }
    assert expected - shown == set()
    documented = {line for line in shown if line.startswith("denied-peer-ip=")}
    assert documented == {f"denied-peer-ip={peers}" for peers in DENIED_PEERS}
