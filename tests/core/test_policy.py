"""Who may ring: the policy table, rule by rule, in its order (first match wins)."""

from __future__ import annotations

from datetime import datetime

import pytest

from tcall.engine.contacts import Contact
from tcall.engine.core.policy import decide_incoming
from tcall.engine.settings import Settings

BOB = Contact("bob", b"b" * 32)
NOON = datetime(2026, 12, 2, 12, 0)


def settings(**values: str) -> Settings:
    chosen = Settings.load()
    for key, value in values.items():
        chosen.set(key, value)
    return chosen


@pytest.mark.parametrize(
    ("values", "contact", "in_call", "auto", "expected"),
    [
        ({}, Contact("bob", b"b" * 32, blocked=True), False, False, ("silence", "blocked")),
        ({"who_can_call": "nobody"}, BOB, False, False, ("silence", "who_can_call=nobody")),
        ({}, None, False, False, ("silence", "not a contact")),
        ({"who_can_call": "everyone"}, None, False, False, ("silence", "unknown caller")),
        (
            {"who_can_call": "everyone", "silence_unknown": "off"},
            None,
            False,
            False,
            ("ring", "ring"),
        ),
        ({"do_not_disturb": "on"}, BOB, True, True, ("miss", "do not disturb")),
        ({"do_not_disturb": "11:00-13:00"}, BOB, False, False, ("miss", "do not disturb")),
        ({"do_not_disturb": "13:00-14:00"}, BOB, False, False, ("ring", "ring")),
        ({}, BOB, True, True, ("busy", "in another call")),
        ({}, BOB, False, True, ("auto_answer", "auto-answer")),
        (
            {"auto_answer": "contacts", "auto_answer_from": "bob"},
            BOB,
            False,
            False,
            ("auto_answer", "auto-answer"),
        ),
        (
            {"auto_answer": "contacts"},
            Contact("bob", b"b" * 32, auto_answer=True),
            False,
            False,
            ("auto_answer", "auto-answer"),
        ),
        ({"auto_answer": "contacts"}, BOB, False, False, ("ring", "ring")),
        (
            {"who_can_call": "everyone", "silence_unknown": "off"},
            None,
            False,
            True,
            ("ring", "ring"),
        ),
        ({}, BOB, False, False, ("ring", "ring")),
    ],
)
def test_policy_table(
    values: dict[str, str],
    contact: Contact | None,
    in_call: bool,
    auto: bool,
    expected: tuple[str, str],
) -> None:
    decision = decide_incoming(
        settings(**values),
        contact,
        wants_video=True,
        now=NOON,
        in_call=in_call,
        auto_answer_contacts=auto,
    )
    assert (decision.action, decision.reason) == expected


def test_video_calling_off_makes_every_call_audio_only() -> None:
    decision = decide_incoming(
        settings(video_calling="off"), BOB, wants_video=True, now=NOON, in_call=False
    )
    assert decision.action == "ring" and not decision.video
