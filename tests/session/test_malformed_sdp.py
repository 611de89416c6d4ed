"""A contact's validly signed offer or answer with broken SDP (issue #12, item 8): whatever aiortc
makes of it, the call ends with PROTOCOL, is freed, and a hang-up or Ctrl-C is never stuck behind it.
Driven through the real path from a verified message to aiortc: a LiveCall and its CallCore."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tcall.engine.call import CallOptions
from tcall.engine.core.call import (
    Accept,
    CallCore,
    CallSettings,
    HangUp,
    Interrupt,
    PeerMessage,
    Start,
)
from tcall.engine.core.outcome import Outcome
from tcall.engine.events import Event, Summary
from tcall.engine.history import History
from tcall.engine.live import LiveCall
from tests.support.sessions import pattern_session

OPTIONS = CallOptions(video="pattern", audio="none", width=160, height=120)
BROKEN = {
    "rtpmap without a clock rate": (r"a=rtpmap:(\d+) VP8/90000", r"a=rtpmap:\1 VP8"),
    "a bogus setup role": (r"a=setup:\w+", "a=setup:bogus"),
    "a garbage candidate": (r"a=candidate:[^\r\n]*", "a=candidate:garbage"),
    "a non-numeric ssrc": (r"a=ssrc:\d+", "a=ssrc:abc"),
}


class Channel:
    records_history = False

    def __init__(self, answer: str | None = None, deliver: Any = None) -> None:
        self.sent: list[str] = []
        self.answer, self.deliver = answer, deliver

    async def send(
        self,
        kind: str,
        call_id: str,
        *,
        sdp: str | None = None,
        video: bool | None = None,
        attempt: int | None = None,
    ) -> None:
        self.sent.append(kind)
        if kind == "offer" and self.answer is not None:
            self.deliver(PeerMessage("answer", sdp=self.answer, video=True))

    def review(
        self, outcome: Outcome, reason: str | None, figures: Any
    ) -> tuple[Outcome, str | None]:
        return outcome, reason

    def network_changed(self) -> None:
        pass

    async def close(self) -> None:
        pass


async def _offer() -> str:
    session = pattern_session(160, 120, lambda state: None)
    try:
        return await session.create_offer()
    finally:
        await session.close()


async def _answer(offer: str) -> str:
    session = pattern_session(160, 120, lambda state: None)
    try:
        return await session.create_answer(offer)
    finally:
        await session.close()


def _live(core: CallCore, channel: Channel, events: list[Event], freed: list[LiveCall]) -> LiveCall:
    return LiveCall(core, OPTIONS, channel, events.append, History.open(0), time.time, freed.append)


async def answer_offer(offer: str) -> Summary:
    """We are called with `offer`, accept it, and hang up if the call is still alive."""
    core = CallCore(
        "c" * 16, "bob", False, b"b" * 32, CallSettings(), offer_sdp=offer, is_contact=True
    )
    channel, events, freed = Channel(), [], []
    live = _live(core, channel, events, freed)
    live.feed(Accept(video=True))
    for _ in range(100):
        if live.done.done() or "answer" in channel.sent:
            break
        await asyncio.sleep(0.02)
    if not live.done.done():
        live.feed(HangUp())
    summary = await asyncio.wait_for(live.done, 5)
    assert isinstance(summary, Summary)
    assert freed == [live]  # the Phone forgets it: the next caller is not told "busy"
    return summary


async def call_with_answer(answer: str) -> Summary:
    """We call and get `answer` back."""
    core = CallCore("d" * 16, "bob", True, b"b" * 32, CallSettings(), is_contact=True)
    events: list[Event] = []
    channel = Channel(answer, lambda message: live.feed(message))
    live = _live(core, channel, events, [])
    live.open_media()
    live.feed(Start())
    try:
        summary = await asyncio.wait_for(asyncio.shield(live.done), 3)
    except TimeoutError:
        live.feed(Interrupt())  # Ctrl-C: never stuck behind aiortc
        summary = await asyncio.wait_for(live.done, 5)
    assert isinstance(summary, Summary)
    return summary


@pytest.mark.parametrize("broken", BROKEN)
async def test_a_broken_offer_ends_the_call_with_protocol(broken: str) -> None:
    pattern, replacement = BROKEN[broken]
    offer = re.sub(pattern, replacement, await _offer(), count=1)
    summary = await answer_offer(offer)
    assert summary.outcome == "protocol_error", summary
    assert summary.reason and "refused" in summary.reason


@pytest.mark.parametrize("broken", BROKEN)
async def test_a_broken_answer_ends_the_call_with_protocol(broken: str) -> None:
    pattern, replacement = BROKEN[broken]
    answer = re.sub(pattern, replacement, await _answer(await _offer()), count=1)
    summary = await call_with_answer(answer)
    assert summary.outcome == "protocol_error", summary


LINE_MUTATIONS = st.tuples(
    st.sampled_from(["replace", "delete", "duplicate", "truncate"]),
    st.integers(0, 200),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=30),
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(mutation=LINE_MUTATIONS)
def test_any_mutated_offer_ends_the_call_cleanly(mutation: tuple[str, int, str]) -> None:
    """Whatever the mutation, the call ends (a summary, the call freed) and nothing escapes."""

    async def run() -> Summary:
        lines = (await _offer()).split("\r\n")
        how, at, text = mutation
        index = at % len(lines)
        key, _, value = lines[index].partition("=")
        if how == "replace":
            lines[index] = f"{key}={text}"
        elif how == "delete":
            del lines[index]
        elif how == "duplicate":
            lines.insert(index, lines[index])
        else:
            lines[index] = lines[index][: len(lines[index]) // 2]
        return await answer_offer("\r\n".join(lines))

    summary = asyncio.run(run())
    assert summary.outcome in ("protocol_error", "cancelled"), summary
