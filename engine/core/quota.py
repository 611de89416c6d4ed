"""Reports that anyone can cause, kept to a few a minute: the rest are counted, not shown.

A stranger who knows our address can send thousands of messages that each deserve a line (a
silenced call, a refused message). Printing or logging each one would let them slow us down and
bury what matters, so each kind gets a `Quota`: the first few in a window pass, the others are
only counted, and the driver says how many when the window closes. Pure: the caller passes `now`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Quota:
    window_s: float = 60.0
    shown: int = 5  # reports shown in full per window
    opened_at: float | None = None  # None: no window open
    count: int = 0  # reports in the open window

    def report(self, now: float) -> bool:
        """Count one report; True if it is to be shown in full. A report with no window open
        opens one (the driver then closes it after `window_s`)."""
        if self.opened_at is None:
            self.opened_at = now
        self.count += 1
        return self.count <= self.shown

    @property
    def opens_window(self) -> bool:
        """The report just counted opened the window."""
        return self.count == 1

    def close(self) -> int:
        """End the window; how many reports in it were not shown."""
        hidden = max(0, self.count - self.shown)
        self.opened_at, self.count = None, 0
        return hidden
