"""A flood of strangers' calls and junk is cheap and never delays nor crowds out a contact (issue
#12, items 5 and 6): a few `silenced` and `refused` events and one history entry for the lot; the
strangers fill their own replay budget, and are refused beyond it, while the contact's call that
comes after them rings and connects."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import nacl.signing

from tcall.engine.identity import Identity, load_identity
from tcall.engine.relay import protocol
from tcall.engine.wire import STRANGERS_REPLAY_BUDGET, seal_message
from tests.support.relay_links import raw_link
from tests.support.relays import ServeProcess
from tests.support.users import history, pair

FLOOD = STRANGERS_REPLAY_BUDGET + 500
SDP = "v=0\r\na=fingerprint:sha-256 " + ":".join(["AB"] * 32) + "\r\n"


async def _flood(relay_url: str, victim: Identity) -> None:
    now = time.time()
    offers = [
        seal_message(
            Identity.from_seed(i.to_bytes(32, "big")),
            victim.public_key,
            "offer",
            f"{i:032x}",
            now,
            sdp=SDP,
            video=True,
        )
        for i in range(1, FLOOD + 1)
    ]
    sender = Identity.from_seed(b"\xee" * 32)
    async with raw_link(relay_url) as link:
        await link.sign_in(nacl.signing.SigningKey(sender.seed))
        to = protocol.mailbox_id(victim.public_key)
        for offer in offers:
            await link.ws.send_bytes(protocol.encode_send(to, offer))
            await link.ws.send_bytes(protocol.encode_send(to, b"junk" * 50))


def test_a_flood_of_strangers_calls_is_one_entry_and_a_contact_still_gets_through(
    tmp_path: Path,
) -> None:
    relay = ServeProcess("--rate", "100000", "--burst", "100000")
    try:
        alice, bob = pair(tmp_path, relay.url)
        listener = bob.listen("--auto-answer")
        asyncio.run(_flood(relay.url, load_identity(bob.home / "identity.key")))
        code, out, err = alice.call("bob", "--duration", "2")
        assert code == 0, err
        listener.stop()
    finally:
        relay.stop()
    for kind in ("silenced", "refused"):
        assert 1 <= len([e for e in listener.events if e["event"] == kind]) <= 5
    silenced = STRANGERS_REPLAY_BUDGET  # the rest found the strangers' replay budget full
    notices = [e["message"] for e in listener.events if e["event"] == "notice"]
    assert f"silenced {silenced - 5} more calls from strangers in the last minute" in notices
    refused = FLOOD + (FLOOD - silenced)  # every junk message, and the offers over the budget
    assert f"refused {refused - 5} more messages in the last minute" in notices
    strangers = [r for r in history(bob) if r["outcome"] == "silenced"]
    assert len(strangers) == 2  # the first, as itself, and the rest of the minute as one entry
    assert sum(r.get("count", 1) for r in strangers) == silenced
    assert [r["contact"] for r in history(bob) if r["outcome"] == "answered"] == ["alice"]
