"""Calls across NAT routers with nothing set but `relay_url` (issue #14).

A public network runs `tcall serve --coturn` over wss:// (a test CA signs its certificate); each user
sits behind a router of its own that masquerades and drops unsolicited packets, as home routers do
(tests/support/nat.py). The relay hands each signed-in user its STUN and TURN servers and short-lived
TURN credentials; each case checks that media flowed both ways and which route ICE chose.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.support.nat import PUBLIC_IP, Network, nat_network
from tests.support.relays import ServeProcess
from tests.support.tls import make_pki
from tests.support.users import User


@contextmanager
def two_homes(
    tmp_path: Path, kinds: list[str], *serve: str
) -> Iterator[tuple[Network, ServeProcess, User, User]]:
    """alice behind router 0, bob behind router 1, each a contact of the other; the relay (with
    its own coturn, which may relay to the routers' public addresses) on the public network."""
    pki = make_pki(tmp_path / "pki", addresses=(PUBLIC_IP,))
    with nat_network(kinds) as net:
        relay = ServeProcess(
            "--cert",
            str(pki.cert),
            "--key",
            str(pki.key),
            "--coturn",
            "--coturn-allow-peer",
            "203.0.113.0-203.0.113.255",  # the routers' public addresses are TEST-NET-3
            *serve,
            host=PUBLIC_IP,
            prefix=net.public,
        )
        try:
            env = {"TCALL_ICE_ADDRESSES": "", "TCALL_RELAY_CA": str(pki.ca)}
            alice = User("alice", tmp_path / "alice", relay.url, env=env, prefix=net.homes[0])
            bob = User("bob", tmp_path / "bob", relay.url, env=env, prefix=net.homes[1])
            alice.add(bob)
            bob.add(alice)
            bob.set("answer_with_camera", "on")
            yield net, relay, alice, bob
        finally:
            relay.stop()


def call(
    alice: User, bob: User, *args: str
) -> tuple[int, list[dict[str, Any]], list[dict[str, Any]]]:
    """alice calls bob, who answers by himself; both sides' JSON events."""
    listener = bob.listen("--auto-answer", "--once")
    code, out, err = alice.call("bob", "--duration", "3", *args)
    listener.finish()
    assert out, err
    return code, out, listener.events


def routes(events: list[dict[str, Any]]) -> set[str]:
    return {e["route"] for e in events if e["event"] == "stats" and e["route"]}


def assert_media_both_ways(code: int, out: list[dict[str, Any]], bob: list[dict[str, Any]]) -> None:
    assert code == 0, out[-1]
    assert out[-1]["outcome"] == "answered"
    assert out[-1]["frames_received"] > 30  # bob's video reached alice
    bob_summary = [e for e in bob if e["event"] == "summary"][-1]
    assert bob_summary["frames_received"] > 30  # and alice's reached bob


def test_two_cone_nats_connect_directly_through_server_reflexive_candidates(
    tmp_path: Path,
) -> None:
    with two_homes(tmp_path, ["cone", "cone"]) as (_, _, alice, bob):
        code, out, bob_events = call(alice, bob)
    assert_media_both_ways(code, out, bob_events)
    (route,) = routes(out)
    # Our end is the host candidate the NAT mapped (aioice pairs from the base), theirs the
    # address their NAT showed (srflx, or prflx when learnt from their first check).
    local, remote = route.split("/")
    assert local in ("host", "srflx", "prflx") and remote in ("srflx", "prflx"), route
    assert out[-1]["route"] == route


def test_a_symmetric_nat_goes_through_turn(tmp_path: Path) -> None:
    with two_homes(tmp_path, ["cone", "symmetric"]) as (_, _, alice, bob):
        code, out, bob_events = call(alice, bob)
    assert_media_both_ways(code, out, bob_events)
    assert all("relay" in route for route in routes(out)), routes(out)


def test_a_home_that_lets_only_tcp_out_uses_turn_over_tcp(tmp_path: Path) -> None:
    with two_homes(tmp_path, ["cone", "no_udp"]) as (_, _, alice, bob):
        code, out, bob_events = call(alice, bob)
    assert_media_both_ways(code, out, bob_events)
    bob_routes = routes(bob_events)
    assert bob_routes and all(route.startswith("relay/") for route in bob_routes), bob_routes


def test_relay_only_goes_through_turn_on_both_ends(tmp_path: Path) -> None:
    with two_homes(tmp_path, ["cone", "cone"]) as (_, _, alice, bob):
        for user in (alice, bob):
            user.set("relay_only", "on")
        code, out, bob_events = call(alice, bob)
    assert_media_both_ways(code, out, bob_events)
    assert routes(out) == {"relay/relay"}
    assert routes(bob_events) == {"relay/relay"}


def test_with_turn_down_a_symmetric_nat_says_so_and_fails_with_its_exit_code(
    tmp_path: Path,
) -> None:
    """coturn gone: the call still tries the other routes (there are none through a symmetric NAT
    without TURN), says why, and ends with exit 4 (failed) or 5 (timeout), never 0."""
    with two_homes(tmp_path, ["cone", "symmetric"]) as (_, relay, alice, bob):
        # Frozen, not killed: the relay would start a new one. Only this relay's coturn.
        turnserver = ["-P", str(relay.proc.pid), "-x", "turnserver"]
        subprocess.run(["pkill", "-STOP", *turnserver], check=True)
        try:
            code, out, _ = call(alice, bob, "--connect-timeout", "5")
        finally:
            subprocess.run(["pkill", "-CONT", *turnserver], check=False)
    assert code in (4, 5), out[-1]
    assert out[-1]["outcome"] in ("failed", "timeout")
    notices = [e["message"] for e in out if e["event"] == "notice"]
    assert any("TURN" in n and "no relay address" in n for n in notices), notices
