"""Two test hosts in network namespaces joined by a veth pair: a call across a real (virtual) link.

The namespaces, the veth pair and the addresses (TEST-NET-2, 198.51.100.0/24) exist only inside this
test; ICE uses the hosts' real interface addresses, not loopback.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.calls.people import Relay, User

HOSTS = {"h1": "198.51.100.1", "h2": "198.51.100.2"}


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@pytest.fixture
def hosts() -> Iterator[dict[str, list[str]]]:
    tag = f"tcall{os.getpid() % 100000}"
    names = {host: f"{tag}{host}" for host in HOSTS}
    veth = (f"{tag}a", f"{tag}b")
    try:
        for ns in names.values():
            _ip("netns", "add", ns)
        _ip("link", "add", veth[0], "type", "veth", "peer", "name", veth[1])
        for (host, ns), dev in zip(names.items(), veth, strict=True):
            _ip("link", "set", dev, "netns", ns)
            _ip("-n", ns, "addr", "add", f"{HOSTS[host]}/24", "dev", dev)
            _ip("-n", ns, "link", "set", dev, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        yield {host: ["ip", "netns", "exec", ns] for host, ns in names.items()}
    finally:
        for ns in names.values():
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def test_call_between_two_hosts(tmp_path: Path, hosts: dict[str, list[str]]) -> None:
    relay = Relay(host=HOSTS["h1"], prefix=hosts["h1"])
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
