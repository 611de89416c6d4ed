"""The call log file: the purge of old entries, at start and daily, under a clock the test owns, and
a damaged file. No call is made, so nobody here needs a relay."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

import pytest

from tcall.engine.history import DAY, HISTORY_FILE, CallRecord, History
from tests.support.users import User, history, pair

NO_RELAY = "ws://127.0.0.1:9"  # the discard port: never dialled, since nobody calls


@pytest.fixture
def people(tmp_path: Path) -> tuple[User, User]:
    return pair(tmp_path, NO_RELAY)


def _record(contact: str, started_at: float) -> CallRecord:
    return CallRecord(contact, "incoming", started_at, 0.0, "missed")


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
