"""A DTLS peer whose certificate does not match the signed fingerprint is refused."""

from __future__ import annotations

import asyncio
import re

import pytest

from tcall.engine.errors import CallFailed
from tcall.engine.session import Session
from tests.support.sessions import pattern_session


def _ignore(state: str) -> None:
    pass


async def _call_with_answer(edit: bool) -> tuple[Session, Session]:
    alice = pattern_session(160, 120, _ignore)
    bob = pattern_session(160, 120, _ignore)
    answer = await bob.create_answer(await alice.create_offer())
    if edit:
        # The answer claims a certificate bob does not have, as a relay swapping fingerprints would.
        answer = re.sub(
            r"(a=fingerprint:sha-256 )([0-9A-F]{2})",
            lambda m: m[1] + ("00" if m[2] != "00" else "11"),
            answer,
        )
    await alice.accept_answer(answer)
    return alice, bob


def test_mismatched_certificate_fails_the_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TCALL_ICE_ADDRESSES", "127.0.0.1")

    async def scenario() -> int:
        alice, bob = await _call_with_answer(edit=True)
        try:
            with pytest.raises(CallFailed):
                await alice.wait_connected(timeout=20)
            await asyncio.sleep(0.5)
            return alice.video_sink.frames_received + bob.video_sink.frames_received
        finally:
            await alice.close()
            await bob.close()

    assert asyncio.run(scenario()) == 0


def test_matching_certificate_connects(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TCALL_ICE_ADDRESSES", "127.0.0.1")

    async def scenario() -> str:
        alice, bob = await _call_with_answer(edit=False)
        try:
            await alice.wait_connected(timeout=20)
            return alice.pc.connectionState
        finally:
            await alice.close()
            await bob.close()

    assert asyncio.run(scenario()) == "connected"
