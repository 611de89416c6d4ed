"""Contact requests between real `tcall` processes through a real `tcall serve` (issue #13 item 6).

Dave adds bob; bob never added dave. Dave's first call, or `tcall contacts request bob`, carries
dave's relay (and the request a name he suggests), sealed to bob: bob's tcall never rings for it, keeps it as a
pending request and says "dave wants to reach you"; accepting it makes dave a contact whose next
call rings, blocking it drops dave's later requests. Strangers' floods and forged names cost bob
a bounded file and a few lines, never a terminal escape, and never a contact's call.
"""

from __future__ import annotations

import asyncio
import base64
import subprocess
import time
from pathlib import Path
from typing import Any

import nacl.signing

from tcall.engine.address import format_address
from tcall.engine.identity import Identity, load_identity
from tcall.engine.relay import protocol
from tcall.engine.requests import MAX_REQUESTS
from tcall.engine.wire import MAX_NAME_CHARS, seal_message, sign_and_seal
from tests.support.cli import TCALL
from tests.support.relay_links import raw_link
from tests.support.relays import ServeProcess
from tests.support.users import RING, User, pair


def tcall(user: User, *args: str) -> subprocess.CompletedProcess[str]:
    """`tcall ARGS` as `user`, in a process of its own."""
    return subprocess.run([TCALL, *args], capture_output=True, text=True, timeout=60, env=user.env)


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.stderr.startswith("tcall: error: ") and result.stderr.count("\n") == 1, result
    assert "Traceback" not in result.stderr + result.stdout
    return result.stderr


def dave_and_bob(tmp_path: Path, relay_url: str) -> tuple[User, User]:
    """dave has bob's address; bob has never heard of dave."""
    dave = User("dave", tmp_path / "dave", relay_url)
    bob = User("bob", tmp_path / "bob", relay_url)
    dave.add(bob)
    return dave, bob


def requests_of(user: User) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = user.json("contacts", "requests", "--json")["requests"]
    return listed


def test_a_first_call_is_a_request_and_accepting_it_makes_a_contact_who_rings(
    tmp_path: Path, relay: ServeProcess
) -> None:
    dave, bob = dave_and_bob(tmp_path, relay.url)
    fingerprint = dave.json("id", "--json")["fingerprint"]
    listener = bob.listen(*RING)
    code, out, _ = dave.call("bob", "--duration", "1", *RING)
    request = listener.wait_for("request", fingerprint=fingerprint)
    listener.stop()

    # dave sees what a callee who is offline looks like; bob's phone never rang
    assert (code, out[-1]["outcome"]) == (10, "no_answer")
    assert request == {
        "event": "request",
        "name": "",
        "fingerprint": fingerprint,
        "relay": relay.url,
    }
    assert not [e for e in listener.events if e["event"] == "incoming"]
    [pending] = requests_of(bob)
    assert (pending["name"], pending["fingerprint"], pending["relay"]) == (
        "",
        fingerprint,
        relay.url,
    )

    nameless = tcall(bob, "contacts", "accept", fingerprint[:9])
    assert nameless.returncode == 2 and "suggested no name" in one_line_error(nameless)
    accepted = tcall(bob, "contacts", "accept", fingerprint[:9], "--name", "dave")
    assert accepted.returncode == 0, accepted.stderr
    assert f"added dave (fingerprint {fingerprint})" in accepted.stdout
    assert requests_of(bob) == []
    [contact] = bob.json("contacts", "list", "--json")["contacts"]
    assert (contact["name"], contact["fingerprint"], contact["relay"]) == (
        "dave",
        fingerprint,
        relay.url,
    )

    listener = bob.listen("--auto-answer", "--once")
    code, out, err = dave.call("bob", "--duration", "1", *RING)
    assert code == 0, err
    assert listener.finish() == 0
    assert [e["from"] for e in listener.events if e["event"] == "incoming"] == ["dave"]


def test_contacts_request_reaches_bob_and_a_blocked_sender_is_dropped(
    tmp_path: Path, relay: ServeProcess
) -> None:
    dave, bob = dave_and_bob(tmp_path, relay.url)
    carol = User("carol", tmp_path / "carol", relay.url)
    carol.add(bob)
    listener = bob.listen()
    sent = tcall(dave, "contacts", "request", "bob", "--as", "dave")
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout.startswith(
        f"sent bob a contact request as dave, with your relay {relay.url}"
    )
    listener.wait_for("request", name="dave")
    listener.stop()

    blocked = tcall(bob, "contacts", "block", "dave")
    assert blocked.returncode == 0, blocked.stderr
    assert requests_of(bob) == []
    [contact] = bob.json("contacts", "list", "--json")["contacts"]
    assert (contact["name"], contact["blocked"]) == ("dave", True)

    listener = bob.listen()
    assert tcall(dave, "contacts", "request", "bob", "--as", "dave").returncode == 0
    assert tcall(carol, "contacts", "request", "bob", "--as", "carol").returncode == 0
    listener.wait_for("request", name="carol")  # carol's came after dave's: dave's is done with
    listener.stop()
    assert [e["name"] for e in listener.events if e["event"] == "request"] == ["carol"]
    assert [r["name"] for r in requests_of(bob)] == ["carol"]


def test_contacts_request_errors_are_one_line_with_their_exit_code(
    tmp_path: Path, relay: ServeProcess
) -> None:
    dave, bob = dave_and_bob(tmp_path, relay.url)
    assert "unknown contact: nobody" in one_line_error(
        result := tcall(dave, "contacts", "request", "nobody")
    )
    assert result.returncode == 2
    result = tcall(dave, "contacts", "request", "bob", "--as", "\x1b[2J")
    assert result.returncode == 2 and "bad contact name" in one_line_error(result)

    listener = dave.listen()  # dave's tcall is online: signing in again would push it off
    result = tcall(dave, "contacts", "request", "bob")
    listener.stop()
    assert result.returncode == 6 and "already running" in one_line_error(result)

    dead = ServeProcess()
    dead_url = dead.url
    dead.stop()
    bob_key = load_identity(bob.home / "identity.key").public_key
    dave.run("contacts", "add", "bob", format_address(bob_key, dead_url), "--replace")
    result = tcall(dave, "contacts", "request", "bob")
    assert result.returncode == 6 and "unreachable" in one_line_error(result)

    nowhere = User("frank", tmp_path / "frank", "")  # no relay of his own, nor one for bob
    nowhere.run("contacts", "add", "bob", format_address(bob_key, ""))
    result = tcall(nowhere, "contacts", "request", "bob")
    assert result.returncode == 2 and "no relay configured" in one_line_error(result)


FLOOD = 200
HOSTILE_NAMES = ["\x1b]0;owned\x07", "[b]bob[/b]", "dave\u202e", "alice"]  # alice: bob's contact


async def _strangers(relay_url: str, bob: Identity) -> None:
    """FLOOD requests from fresh keys, then forged ones: names a terminal would obey, a name over
    the wire's bound, and bob's own contact's name."""
    now = time.time()
    messages = [
        seal_message(
            Identity.from_seed(i.to_bytes(32, "big")),
            bob.public_key,
            "request",
            "",
            now,
            relay=relay_url,
            name=f"s{i}",
        )
        for i in range(1, FLOOD + 1)
    ]
    forger = Identity.from_seed(b"\xf0" * 32)
    for name in HOSTILE_NAMES:
        messages.append(
            seal_message(forger, bob.public_key, "request", "", now, relay="", name=name)
        )
    oversized = {
        "v": 1,
        "type": "request",
        "call_id": "",
        "from": _b64(forger.public_key),
        "to": _b64(bob.public_key),
        "nonce": _b64(b"\x01" * 16),
        "ts": int(now * 1000),
        "relay": "",
        "name": "d" * (MAX_NAME_CHARS + 1),
    }
    messages.append(sign_and_seal(forger, bob.public_key, oversized))
    sender = Identity.from_seed(b"\xee" * 32)
    async with raw_link(relay_url) as link:
        await link.sign_in(nacl.signing.SigningKey(sender.seed))
        to = protocol.mailbox_id(bob.public_key)
        for message in messages:
            await link.ws.send_bytes(protocol.encode_send(to, message))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def test_a_flood_and_forged_names_cost_a_bounded_file_and_never_a_contacts_call(
    tmp_path: Path,
) -> None:
    relay = ServeProcess("--rate", "100000", "--burst", "100000")
    try:
        alice, bob = pair(tmp_path, relay.url)
        listener = bob.listen("--auto-answer")
        asyncio.run(_strangers(relay.url, load_identity(bob.home / "identity.key")))
        code, _, err = alice.call("bob", "--duration", "1")
        assert code == 0, err  # a contact's call still gets through
        listener.stop()  # the minute's unshown requests are written as it closes
    finally:
        relay.stop()

    shown = [e for e in listener.events if e["event"] == "request"]
    assert [e["name"] for e in shown] == [f"s{i}" for i in range(1, 6)]
    notices = [e["message"] for e in listener.events if e["event"] == "notice"]
    more = FLOOD + len(HOSTILE_NAMES) - 5
    assert any(n.startswith(f"{more} more contact requests from strangers") for n in notices)
    refused = [e for e in listener.events if e["event"] == "refused"]
    assert [e["reason"] for e in refused] == ["malformed"]  # the oversized name

    pending = requests_of(bob)
    assert len(pending) == MAX_REQUESTS
    forged = Identity.from_seed(b"\xf0" * 32).fingerprint
    # one entry for the forger, the last of his names; none of them usable, so no name at all
    assert [r["name"] for r in pending if r["fingerprint"] == forged] == [""]
    listed = bob.run("contacts", "requests")
    assert "\x1b" not in listed.stdout + listed.stderr and "\u202e" not in listed.stdout
    assert f"unknown {forged[:19]} wants to reach you" in listed.stdout
