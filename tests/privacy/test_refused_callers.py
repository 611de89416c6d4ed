"""A refused caller learns nothing: block, do-not-disturb and `who_can_call=nobody` all look to
the caller exactly like calling someone who is offline, and the callee's phone never rings."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

from tests.support.users import RING, Couple, User, caller_view, history, sent_by


def _window(start: timedelta, end: timedelta) -> str:
    now = datetime.now()
    return f"{(now + start):%H:%M}-{(now + end):%H:%M}"


def _call_refused(alice: User, bob: User, kind: str, reason: str, *listen: str) -> dict[str, Any]:
    """alice calls a listening bob whose settings refuse her; bob must log it, never ring.

    Runs in a worker thread, so it starts processes only: in-process commands swap sys.stdout."""
    listener = bob.listen(*RING, *listen)
    try:
        code, out, err = alice.call("bob", "--duration", "1", *RING)
        listener.wait_for(kind, reason=reason, **sent_by("alice"))
    finally:
        listener.stop()
    assert not [e for e in listener.events if e["event"] in ("incoming", "summary")]
    return caller_view(code, out, err)


def _call_offline(alice: User, bob: User) -> dict[str, Any]:
    return caller_view(*alice.call("bob", "--duration", "1", *RING))


def test_block_dnd_nobody_and_offline_look_the_same_to_the_caller(couple: Couple) -> None:
    couples = {case: couple(case) for case in ("blocked", "dnd", "dnd_window", "nobody", "offline")}
    _, bob = couples["blocked"]
    bob.run("contacts", "block", "alice")  # presence stays "contacts": alice must not see it
    _, bob = couples["dnd"]
    bob.set("do_not_disturb", "on")
    bob.set("presence", "nobody")  # presence is its own setting: here bob shows it to nobody
    _, bob = couples["dnd_window"]
    bob.set("do_not_disturb", _window(timedelta(hours=-1), timedelta(hours=1)))
    bob.set("presence", "nobody")
    _, bob = couples["nobody"]
    bob.set("who_can_call", "nobody")
    bob.set("presence", "nobody")

    with ThreadPoolExecutor(len(couples)) as pool:
        futures = {
            "blocked": pool.submit(_call_refused, *couples["blocked"], "silenced", "blocked"),
            # do-not-disturb holds even for a contact bob would auto-answer
            "dnd": pool.submit(
                _call_refused, *couples["dnd"], "missed", "do not disturb", "--auto-answer"
            ),
            "dnd_window": pool.submit(
                _call_refused, *couples["dnd_window"], "missed", "do not disturb"
            ),
            "nobody": pool.submit(
                _call_refused, *couples["nobody"], "silenced", "who_can_call=nobody"
            ),
            "offline": pool.submit(_call_offline, *couples["offline"]),
        }
        views = {case: future.result() for case, future in futures.items()}

    offline = views.pop("offline")
    assert offline["exit"] == 10 and offline["outcome"] == "no_answer"
    assert offline["reason"] == "bob is unavailable (no answer)"
    assert offline["events"] == [("state", "calling", None, None), ("state", "closed", None, None)]
    for case, view in views.items():
        assert view == offline, case
    logged = {"blocked": "silenced", "dnd": "missed", "dnd_window": "missed", "nobody": "silenced"}
    for case, (alice, bob) in couples.items():
        assert [(r["direction"], r["outcome"]) for r in history(alice)] == [
            ("outgoing", "no_answer")
        ]
        expected = [("incoming", "alice", logged[case])] if case in logged else []
        assert [(r["direction"], r["contact"], r["outcome"]) for r in history(bob)] == expected


def test_dnd_window_that_does_not_contain_now_lets_calls_through(
    people: tuple[User, User],
) -> None:
    alice, bob = people
    bob.set("do_not_disturb", _window(timedelta(hours=1), timedelta(hours=2)))
    listener = bob.listen("--auto-answer", "--once")
    code, out, err = alice.call("bob", "--duration", "1", *RING)
    assert code == 0, err
    assert out[-1]["outcome"] == "answered"
    assert listener.finish() == 0
    assert not [e for e in listener.events if e["event"] == "missed"]
    assert [(r["contact"], r["outcome"]) for r in history(bob)] == [("alice", "answered")]
