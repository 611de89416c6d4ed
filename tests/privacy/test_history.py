"""The local call log after real calls: `tcall history`, `--clear`, and retention 0 (nothing is
written at all). tests/privacy/test_history_file.py has the file itself and its purge."""

from __future__ import annotations

import json
import time

from tcall.engine.history import HISTORY_FILE
from tests.support.users import RING, User, history


def test_history_shows_real_calls_and_clear_empties_it(people: tuple[User, User]) -> None:
    alice, bob = people
    before = time.time()
    listener = bob.listen("--auto-answer", "--once")
    code, _, err = alice.call("bob", "--duration", "2", *RING)
    assert code == 0, err
    hung_up = time.time()
    assert listener.finish() == 0
    code, _, _ = alice.call("bob", *RING)  # bob is gone now
    assert code == 10

    mine = history(alice)
    assert [(r["contact"], r["direction"], r["outcome"]) for r in mine] == [
        ("bob", "outgoing", "no_answer"),
        ("bob", "outgoing", "answered"),
    ]
    assert mine[0]["duration_s"] == 0 and mine[1]["duration_s"] >= 2
    assert all(before <= r["started_at"] <= time.time() for r in mine)
    assert mine[1]["started_at"] + mine[1]["duration_s"] <= hung_up + 1  # when it began
    [theirs] = history(bob)
    assert (theirs["contact"], theirs["direction"], theirs["outcome"]) == (
        "alice",
        "incoming",
        "answered",
    )
    lines = alice.run("history").stdout.splitlines()
    assert len(lines) == 2 and "bob" in lines[1] and "answered" in lines[1]

    assert alice.json("history", "--clear", "--json") == {"cleared": 2}
    assert history(alice) == []
    assert json.loads((alice.home / HISTORY_FILE).read_text()) == []
    assert len(history(bob)) == 1  # clearing is local to one user


def test_retention_zero_writes_no_history_at_all(people: tuple[User, User], carol: User) -> None:
    alice, bob = people
    for user in (alice, bob, carol):
        user.set("history_retention_days", "0")
    listener = bob.listen("--auto-answer", RING[0], RING[1])
    try:
        code, _, err = alice.call("bob", "--duration", "1", *RING)
        assert code == 0, err
        code, _, _ = carol.call("bob", *RING)  # a stranger: silenced, which is logged normally
        assert code == 10
        listener.wait_for("silenced")
    finally:
        listener.stop()
    for user in (alice, bob, carol):
        assert not (user.home / HISTORY_FILE).exists(), user.name
        assert history(user) == []
