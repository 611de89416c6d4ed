"""The local call log: `history.json` in the data dir, kept only as long as the user chose.

Entries older than `history_retention_days` are purged when the log is opened and then daily;
with retention 0 nothing is ever written. The file is rewritten atomically on each change.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tcall.engine import paths
from tcall.engine.atomic import write_atomic
from tcall.engine.errors import ConfigError

HISTORY_FILE = "history.json"
OUTCOMES = ("answered", "missed", "declined", "silenced", "failed", "busy", "no_answer")
DAY = 86400.0
Clock = Callable[[], float]


@dataclass(frozen=True)
class CallRecord:
    contact: str  # the contact's name, or "unknown <fingerprint>"
    direction: str  # "outgoing" | "incoming"
    started_at: float  # unix seconds
    duration_s: float  # 0 unless answered
    outcome: str  # one of OUTCOMES
    video: bool = True


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
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            return [CallRecord(**entry) for entry in raw]
        except FileNotFoundError:
            return []
        except (ValueError, TypeError, OSError) as exc:
            raise ConfigError(f"{self.path}: unreadable call history ({exc})") from None

    def _write(self) -> None:
        if not self._records and not self.path.exists():
            return
        data = json.dumps([asdict(r) for r in self._records], indent=1).encode()
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
        self._records.append(record)
        self._write()

    def clear(self) -> None:
        self._records = []
        if self.path.exists():
            self._write()

    def purge(self) -> int:
        """Drop records older than the retention; returns how many went."""
        self._purged_at = self.clock()
        cutoff = self._purged_at - self.retention_days * DAY
        kept = [r for r in self._records if r.started_at >= cutoff and self.retention_days > 0]
        dropped = len(self._records) - len(kept)
        if dropped:
            self._records = kept
            self._write()
        return dropped

    def _purge_if_due(self) -> None:
        if self.clock() - self._purged_at >= DAY:
            self.purge()

    def as_json(self) -> list[dict[str, Any]]:
        return [asdict(r) for r in self.records]
