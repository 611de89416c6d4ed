"""The microphone's level as a bar, and a warning when you speak while muted.

The call screen hands it the engine's newest reading about ten times a second (attributes down);
it redraws only when what it shows changes. The warning stays up a little after you stop, so it
does not blink between words.
"""

from __future__ import annotations

from textual.widgets import Static

from tcall.engine.api import MicReading

CELLS = 12
FLOOR_DB = -60.0  # the empty bar: quieter than a quiet room through a laptop microphone
LOUD_DB = -12.0  # from here the bar turns yellow; past -3 dB red (near clipping)
HOLD_S = 2.0
MUTED_WARNING = "[b reverse red] You are muted [/] [red]and speaking: press m to be heard[/]"


def bar(level_db: float) -> str:
    """CELLS cells of the level between FLOOR_DB and 0 dBFS, in Textual markup."""
    filled = round(CELLS * min(1.0, max(0.0, (level_db - FLOOR_DB) / -FLOOR_DB)))
    colour = "red" if level_db > -3 else "yellow" if level_db > LOUD_DB else "green"
    cells = f"[{colour}]{'█' * filled}[/]" if filled else ""
    return cells + f"[dim]{'░' * (CELLS - filled)}[/]"


class MicMeter(Static):
    """`mic ██████░░░░░░`, and the warning while muted and speaking."""

    DEFAULT_CSS = """
    MicMeter {
        height: 1;
        padding: 0 1;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id)
        self.warning_until = 0.0  # the clock's time until which the muted warning stays up
        self._shown = ""

    @property
    def warning(self) -> bool:
        return MUTED_WARNING in self._shown

    def show(self, reading: MicReading, muted: bool, now: float) -> None:
        if muted and reading.speaking:
            self.warning_until = now + HOLD_S
        if not muted:
            self.warning_until = 0.0
        text = f"mic {bar(reading.level_db)}"
        if now < self.warning_until:
            text += f"  {MUTED_WARNING}"
        elif muted:
            text += "  [red]muted[/]"
        if text != self._shown:
            self._shown = text
            self.update(text)
