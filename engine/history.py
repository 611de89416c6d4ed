"""The local call log: `history.json` in the data dir, kept only as long as the user chose.

Entries older than `history_retention_days` are purged when the log is opened and then daily;
with retention 0 nothing is ever written. The file is rewritten atomically on each change, under
the folder's lock and after reading it again, so entries another process added are kept.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from tcall.engine import paths
from tcall.engine.atomic import read_json_array, write_atomic
from tcall.engine.errors import ConfigError
from tcall.engine.locking import locked

HISTORY_FILE = "history.json"
OUTCOMES = ("answered", "missed", "declined", "silenced", "failed", "busy", "no_answer")
DAY = 86400.0
MAX_BYTES = 64 << 20  # some 300,000 calls
Clock = Callable[[], float]


@dataclass(frozen=True)
class CallRecord:
    contact: str  # the contact's name, or "unknown <fingerprint>"
    direction: str  # "outgoing" | "incoming"
    started_at: float  # unix seconds
    duration_s: float  # 0 unless answered
    outcome: str  # one of OUTCOMES
    video: bool = True
    count: int = 1  # more than 1: that many calls in one entry (silenced calls from strangers)


FIELDS = {f.name for f in fields(CallRecord)}
REQUIRED = FIELDS - {"video", "count"}


def _entry(record: CallRecord) -> dict[str, Any]:
    """A record as stored and as `tcall history --json` prints it (`count` only when above 1)."""
    entry = asdict(record)
    if record.count == 1:
        del entry["count"]
    return entry


def _number(value: Any) -> float:
    if type(value) not in (int, float) or not math.isfinite(value):
        raise TypeError("not a number")
    return float(value)


def _record(path: Path, index: int, entry: Any) -> CallRecord:
    """One checked entry: the types the app and `tcall history` rely on, or a ConfigError."""
    try:
        if not isinstance(entry, dict):
            raise TypeError("not an object")
        if set(entry) - FIELDS or not set(entry) >= REQUIRED:
            raise TypeError(f"fields must be {', '.join(sorted(FIELDS))}")
        contact, direction, outcome = entry["contact"], entry["direction"], entry["outcome"]
        video = entry.get("video", True)
        if not isinstance(contact, str) or not isinstance(video, bool):
            raise TypeError("contact must be text and video true or false")
        if direction not in ("outgoing", "incoming") or outcome not in OUTCOMES:
            raise TypeError(f"bad direction or outcome {direction!r}/{outcome!r}")
        started_at, duration_s = _number(entry["started_at"]), _number(entry["duration_s"])
        count = entry.get("count", 1)
        if type(count) is not int or count < 1:
            raise TypeError("count must be a whole number from 1 up")
    except TypeError as exc:
        raise ConfigError(f"{path}: unreadable call history (entry #{index + 1}: {exc})") from None
    return CallRecord(contact, direction, started_at, duration_s, outcome, video, count)


class History:
    def __init__(self, path: Path, retention_days: int, clock: Clock = time.time) -> None:
        self.path = path
        self.retention_days = retention_days
        self.clock = clock
        self._records = self._read()
        self._purged_at = 0.0
        self.purge()

    @classmethod
    def open(cls, retention_days: int, clock: Clock = time.time) -> History:
        return cls(paths.data_dir() / HISTORY_FILE, retention_days, clock)

    def _read(self) -> list[CallRecord]:
        entries = read_json_array(self.path, MAX_BYTES, "call history")
        return [_record(self.path, i, entry) for i, entry in enumerate(entries)]

    def _write(self) -> None:
        if not self._records and not os.path.lexists(self.path):
            return
        data = json.dumps([_entry(r) for r in self._records], indent=1).encode()
        write_atomic(self.path, data)

    @property
    def records(self) -> list[CallRecord]:
        """Newest first."""
        self._purge_if_due()
        return sorted(self._records, key=lambda r: r.started_at, reverse=True)

    def add(self, record: CallRecord) -> None:
        self._purge_if_due()
        if self.retention_days == 0:
            return  # keep nothing: not even a file
        with locked(self.path.parent):  # what others wrote meanwhile is kept
            self._records = self._read()
            self._records.append(record)
            self._write()

    def clear(self) -> None:
        self._records = []
        if os.path.lexists(self.path):
            with locked(self.path.parent):
                self._write()

    def purge(self) -> int:
        """Drop records older than the retention; returns how many went."""
        self._purged_at = self.clock()
        if not self._records or all(map(self._keep, self._records)):
            return 0
        with locked(self.path.parent):
            current = self._read()
            self._records = [r for r in current if self._keep(r)]
            self._write()
        return len(current) - len(self._records)

    def _keep(self, record: CallRecord) -> bool:
        cutoff = self._purged_at - self.retention_days * DAY
        return self.retention_days > 0 and record.started_at >= cutoff

    def _purge_if_due(self) -> None:
        if self.clock() - self._purged_at >= DAY:
            self.purge()

    def as_json(self) -> list[dict[str, Any]]:
        return [_entry(r) for r in self.records]
