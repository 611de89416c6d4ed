"""Two test hosts in network namespaces joined by a veth pair: a call across a real (virtual) link.

The namespaces, the veth pair and the addresses (TEST-NET-2, 198.51.100.0/24) exist only inside this
test; ICE uses the hosts' real interface addresses, not loopback.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.relays import ServeProcess
from tests.support.services import network_hosts
from tests.support.users import User

HOSTS = {"h1": "198.51.100.1", "h2": "198.51.100.2"}


@pytest.fixture
def hosts() -> Iterator[dict[str, list[str]]]:
    with network_hosts(HOSTS) as prefixes:
        yield prefixes


def test_call_between_two_hosts(tmp_path: Path, hosts: dict[str, list[str]]) -> None:
    relay = ServeProcess(host=HOSTS["h1"], prefix=hosts["h1"])
    try:
        no_pin = {"TCALL_ICE_ADDRESSES": ""}  # each host offers its own interface addresses
        alice = User("alice", tmp_path / "alice", relay.url, env=no_pin, prefix=hosts["h1"])
        bob = User("bob", tmp_path / "bob", relay.url, env=no_pin, prefix=hosts["h2"])
        alice.add(bob)
        bob.add(alice)
        bob.set("answer_with_camera", "on")
        listener = bob.listen("--auto-answer", "--once")
        code, out, err = alice.call("bob", "--duration", "3")
        assert code == 0, err
        assert out[-1]["outcome"] == "answered"
        assert out[-1]["frames_received"] > 30
        assert listener.finish() == 0
        assert [e for e in listener.events if e["event"] == "summary"][-1]["frames_received"] > 30
    finally:
        relay.stop()


def test_a_connect_timeout_shorter_than_the_callees_ends_the_call_as_a_timeout(
    tmp_path: Path, hosts: dict[str, list[str]]
) -> None:
    """Issue #13: bob's host drops every UDP packet (its firewall; signaling over the relay's TCP
    still works), so ICE can never connect. alice's `--connect-timeout 3` ends her call after 3 s
    with TIMEOUT (exit 5), long before bob's own 15 s limit would have hung up on her."""
    subprocess.run([*hosts["h2"], "iptables", "-A", "INPUT", "-p", "udp", "-j", "DROP"], check=True)
    relay = ServeProcess(host=HOSTS["h1"], prefix=hosts["h1"])
    try:
        no_pin = {"TCALL_ICE_ADDRESSES": ""}
        alice = User("alice", tmp_path / "alice", relay.url, env=no_pin, prefix=hosts["h1"])
        bob = User("bob", tmp_path / "bob", relay.url, env=no_pin, prefix=hosts["h2"])
        alice.add(bob)
        bob.add(alice)
        listener = bob.listen("--auto-answer", "--once")
        started = time.monotonic()
        code, out, err = alice.call("bob", "--connect-timeout", "3")
        elapsed = time.monotonic() - started
        assert code == 5, err
        assert out[-1]["outcome"] == "timeout"
        assert "connecting" in [e.get("state") for e in out]
        assert elapsed < 12  # bob's 15 s limit did not end it
        listener.finish()
    finally:
        relay.stop()
