"""The local call log: `tcall history` after real calls, `--clear`, retention 0 (nothing is
written at all) and the purge of old entries, at start and daily, under a clock the test owns."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

from tcall.engine.history import DAY, HISTORY_FILE, CallRecord, History
from tests.support.users import RING, User, history


def _record(contact: str, started_at: float) -> CallRecord:
    return CallRecord(contact, "incoming", started_at, 0.0, "missed")


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


def test_old_entries_are_purged_at_start(people: tuple[User, User]) -> None:
    alice, _ = people
    alice.set("history_retention_days", "30")
    now = time.time()
    old, recent = _record("old", now - 31 * DAY), _record("recent", now - 29 * DAY)
    path = alice.home / HISTORY_FILE
    path.write_text(json.dumps([asdict(old), asdict(recent)]))
    assert [r["contact"] for r in history(alice)] == ["recent"]
    assert [r["contact"] for r in json.loads(path.read_text())] == ["recent"]


def test_purge_after_n_days_with_a_test_clock(tmp_path: Path) -> None:
    now = 1_700_000_000.0
    path = tmp_path / HISTORY_FILE
    log = History(path, retention_days=3, clock=lambda: now)
    log.add(_record("first", now))
    now += 2 * DAY
    log.add(_record("second", now))
    assert [r.contact for r in log.records] == ["second", "first"]

    now += 1.5 * DAY  # "first" is 3.5 days old: the daily purge drops it without a restart
    assert [r.contact for r in log.records] == ["second"]
    assert [r["contact"] for r in json.loads(path.read_text())] == ["second"]

    now += 10 * DAY  # opened again long after: purged at start
    assert History(path, retention_days=3, clock=lambda: now).records == []
    assert json.loads(path.read_text()) == []


def test_unreadable_history_is_one_line_and_config_exit_code(people: tuple[User, User]) -> None:
    alice, _ = people
    (alice.home / HISTORY_FILE).write_text("{not json")
    result = alice.run("history", check=False)
    assert result.returncode == 12
    assert result.stderr.startswith("tcall: error: ") and len(result.stderr.splitlines()) == 1
