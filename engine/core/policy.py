"""Who may ring you: the engine decides before anything rings; the UI only shows the outcome.

The rules, in order (first match wins):
1. a blocked contact, `who_can_call = nobody`, or a stranger when `who_can_call = contacts`:
   silenced (never rung; logged as "silenced");
2. a stranger when `who_can_call = everyone` and `silence_unknown = on`: silenced;
3. do-not-disturb in force: not rung, logged as "missed";
4. already in a call: the caller gets "busy";
5. auto-answer: `auto_answer = contacts` and the caller is in `auto_answer_from` or has the
   contact's auto-answer flag, or `listen --auto-answer` for any contact; never a stranger;
6. otherwise the phone rings.
A refused caller is sent nothing at all, so they see the same "unavailable" as for someone offline:
they cannot tell a block from do-not-disturb from an absent callee.
`video_calling = off` offers incoming video calls as audio-only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from tcall.engine.contacts import Contact
from tcall.engine.settings import Settings

Action = Literal["silence", "miss", "busy", "auto_answer", "ring"]


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str  # for the local log only; never sent to the caller
    video: bool  # whether the call may carry video


def decide_incoming(
    settings: Settings,
    contact: Contact | None,
    *,
    wants_video: bool,
    now: datetime,
    in_call: bool,
    auto_answer_contacts: bool = False,
) -> Decision:
    video = wants_video and settings.video_calling

    def verdict(action: Action, reason: str) -> Decision:
        return Decision(action, reason, video)

    if contact is not None and contact.blocked:
        return verdict("silence", "blocked")
    if settings.who_can_call == "nobody":
        return verdict("silence", "who_can_call=nobody")
    if contact is None and settings.who_can_call == "contacts":
        return verdict("silence", "not a contact")
    if contact is None and settings.silence_unknown:
        return verdict("silence", "unknown caller")
    if settings.dnd_active(now):
        return verdict("miss", "do not disturb")
    if in_call:
        return verdict("busy", "in another call")
    if contact is not None and (
        auto_answer_contacts
        or (
            settings.auto_answer == "contacts"
            and (contact.name in settings.auto_answer_from or contact.auto_answer)
        )
    ):
        return verdict("auto_answer", "auto-answer")
    return verdict("ring", "ring")
