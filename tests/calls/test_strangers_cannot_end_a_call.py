"""A stranger who knows your address cannot end your ringing call (issue #12, item 7): one random
payload, or a validly signed but stale message of their own, is reported and nothing more."""

from __future__ import annotations

import asyncio
import subprocess
import time

import nacl.signing

from tcall.engine.identity import Identity, load_identity
from tcall.engine.relay import protocol
from tcall.engine.wire import seal_message
from tests.support.relay_links import raw_link
from tests.support.relays import ServeProcess
from tests.support.users import User


async def _junk_from_a_stranger(relay_url: str, victim: Identity) -> None:
    stranger = Identity.from_seed(b"\x5a" * 32)
    stale = seal_message(
        stranger, victim.public_key, "hangup", "0123456789abcdef", time.time() - 600
    )
    async with raw_link(relay_url) as link:
        await link.sign_in(nacl.signing.SigningKey(stranger.seed))
        to = protocol.mailbox_id(victim.public_key)
        for payload in (b"\x00" * 200, stale):
            await link.ws.send_bytes(protocol.encode_send(to, payload))


def test_junk_from_a_stranger_never_ends_a_ringing_call(
    people: tuple[User, User], relay: ServeProcess
) -> None:
    alice, bob = people
    listener = bob.listen(stdin=subprocess.PIPE)
    caller = alice.start_call("bob", "--duration", "2")
    caller.wait_for("state", state="ringing")
    asyncio.run(_junk_from_a_stranger(relay.url, load_identity(alice.home / "identity.key")))
    caller.wait_for("refused", reason="undecryptable")
    caller.wait_for("refused", reason="stale")
    listener.wait_for("incoming")
    listener.send("accept")
    assert caller.finish() == 0
    summary = [e for e in caller.events if e["event"] == "summary"][-1]
    assert summary["outcome"] == "answered" and summary["frames_received"] > 0
    listener.stop()
