"""The hostile relay the end-to-end call tests use: it must really drop, replay, reorder, substitute
and forge, and record what it did."""

from __future__ import annotations

import asyncio

import nacl.signing
import pytest

from tcall.engine.relay.client import RelayClient
from tests.support.hostile import (
    HostileRelay,
    Reorder,
    ReplayLater,
    chain,
    drop,
    replay,
    substitute,
)


async def _pair(url: str) -> tuple[RelayClient, RelayClient]:
    a = await RelayClient.connect(url, nacl.signing.SigningKey.generate())
    b = await RelayClient.connect(url, nacl.signing.SigningKey.generate())
    return a, b


async def _drain(client: RelayClient) -> list[bytes]:
    got = []
    while True:
        try:
            got.append(await asyncio.wait_for(client.receive(), 0.3))
        except TimeoutError:
            return got


async def _through(relay: HostileRelay, payloads: list[bytes]) -> list[bytes]:
    a, b = await _pair(relay.url)
    try:
        for payload in payloads:
            await a.send(b.mailbox, payload)
        return await _drain(b)
    finally:
        await a.close()
        await b.close()


@pytest.mark.parametrize(
    ("hook", "expected"),
    [
        (None, [b"1", b"2", b"3", b"4"]),
        (replay(2), [b"1", b"1", b"2", b"2", b"3", b"3", b"4", b"4"]),
        (drop(lambda to, p: p == b"2"), [b"1", b"3", b"4"]),
        (Reorder(2), [b"2", b"1", b"4", b"3"]),
        (ReplayLater(after=2), [b"1", b"2", b"3", b"1", b"4"]),
        (
            substitute(lambda to, p: b"forged-" + p),
            [b"forged-1", b"forged-2", b"forged-3", b"forged-4"],
        ),
        (chain(drop(lambda to, p: p == b"1"), replay(2)), [b"2", b"2", b"3", b"3", b"4", b"4"]),
    ],
)
async def test_hooks_change_what_is_delivered(hook: object, expected: list[bytes]) -> None:
    with HostileRelay(on_route=hook) as relay:  # type: ignore[arg-type]
        got = await _through(relay, [b"1", b"2", b"3", b"4"])
        assert got == expected
        assert [r.payload for r in relay.received] == [b"1", b"2", b"3", b"4"]
        assert [r.payload for r in relay.routed] == expected


async def test_records_sender_and_can_forge_traffic() -> None:
    with HostileRelay() as relay:
        a, b = await _pair(relay.url)
        await a.send(b.mailbox, b"hello")
        assert await b.receive() == b"hello"
        (seen,) = await asyncio.to_thread(relay.wait_received, 1)
        assert (seen.sender, seen.to_mailbox) == (a.mailbox, b.mailbox)
        await asyncio.to_thread(relay.inject, b.mailbox, b"nobody sent this")
        assert await b.receive() == b"nobody sent this"
        assert relay.routed[-1].sender == ""
        await a.close()
        await b.close()
