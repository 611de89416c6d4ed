"""relay_only: all media goes through a real coturn, and the peer never sees our host address."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tcall.engine.identity import load_identity
from tcall.engine.relay.protocol import mailbox_id
from tests.calls.people import User
from tests.calls.test_hostile_relay import peek
from tests.engine.helpers import candidates
from tests.relay.helpers import free_port
from tests.relay.hostile import HostileRelay

USER, PASSWORD = "tcall", "s3cret"


def _stun_answers(port: int) -> bool:
    request = b"\x00\x01\x00\x00\x21\x12\xa4\x42" + os.urandom(12)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.2)
        sock.sendto(request, ("127.0.0.1", port))
        try:
            return sock.recv(2048)[:2] == b"\x01\x01"
        except OSError:
            return False


@pytest.fixture
def coturn(tmp_path: Path) -> Iterator[int]:
    assert shutil.which("turnserver"), "coturn is not installed (apt-get install coturn)"
    port = free_port()
    low = 49152 + (port % 2000) * 8
    process = subprocess.Popen(
        [
            "turnserver",
            "-n",
            "--listening-ip=127.0.0.1",
            "--relay-ip=127.0.0.1",
            f"--listening-port={port}",
            "--lt-cred-mech",
            f"--user={USER}:{PASSWORD}",
            "--realm=tcall.test",
            "--no-tls",
            "--no-dtls",
            "--no-cli",
            "--allow-loopback-peers",
            f"--min-port={low}",
            f"--max-port={low + 7}",
            f"--pidfile={tmp_path / 'turn.pid'}",
            "--log-file=stdout",
            "--simple-log",
            "--no-stdout-log",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while not _stun_answers(port):
        assert process.poll() is None and time.monotonic() < deadline, "coturn did not start"
    yield port
    process.terminate()
    process.wait(10)


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
