"""Find the best render mode: environment variables first, then short queries to the terminal.

The queries are the kitty graphics query, the cell size in pixels (`CSI 16 t`) and DA1 (`CSI c`,
whose parameter 4 means sixel). DA1 goes last: terminals answer in order, so its reply means every
other reply has arrived, and a terminal that ignores the rest still answers DA1. A terminal that
answers nothing costs one short timeout.
"""

from __future__ import annotations

import os
import re
import select
import termios
import time
import tty
from collections.abc import Mapping
from dataclasses import dataclass, replace

from tcall.tui.render.kitty import tmux_wrap

KITTY_QUERY = b"\x1b_Gi=31,s=1,v=1,a=q,t=d,f=24;AAAA\x1b\\"
CELL_SIZE_QUERY = b"\x1b[16t"
DA1_QUERY = b"\x1b[c"

_DA1 = re.compile(rb"\x1b\[\?([0-9;]*)c")
_KITTY_OK = re.compile(rb"\x1b_Gi=31;OK\x1b\\")
_CELL = re.compile(rb"\x1b\[6;(\d+);(\d+)t")


@dataclass(frozen=True)
class Capabilities:
    """What the terminal can draw."""

    truecolor: bool = False
    colors256: bool = False
    sixel: bool = False
    kitty: bool = False
    tmux: bool = False
    cell_px: tuple[int, int] | None = None  # width, height of one cell in pixels
    answered: bool = False  # the terminal replied to DA1


def from_env(env: Mapping[str, str]) -> Capabilities:
    """What COLORTERM, TERM and TERM_PROGRAM promise, before asking the terminal anything."""
    term = env.get("TERM", "")
    program = env.get("TERM_PROGRAM", "")
    colorterm = env.get("COLORTERM", "").lower()
    truecolor = colorterm in ("truecolor", "24bit") or program in (
        "iTerm.app",
        "WezTerm",
        "ghostty",
        "vscode",
    )
    kitty = term == "xterm-kitty" or program in ("kitty", "WezTerm", "ghostty")
    return Capabilities(
        truecolor=truecolor or kitty,
        colors256=truecolor or kitty or "256color" in term,
        kitty=kitty,
        tmux=bool(env.get("TMUX")) or term.startswith(("tmux", "screen")),
    )


def parse_replies(caps: Capabilities, replies: bytes) -> Capabilities:
    """Fold the terminal's answers into `caps`."""
    da1 = _DA1.search(replies)
    cell = _CELL.search(replies)
    return replace(
        caps,
        answered=da1 is not None,
        sixel=caps.sixel or (da1 is not None and b"4" in da1.group(1).split(b";")),
        kitty=caps.kitty or _KITTY_OK.search(replies) is not None,
        cell_px=(int(cell.group(2)), int(cell.group(1))) if cell else caps.cell_px,
    )


def query(fd_in: int, fd_out: int, caps: Capabilities, timeout: float = 0.3) -> Capabilities:
    """Ask the terminal on (`fd_in`, `fd_out`) and wait at most `timeout` seconds for DA1."""
    # Inside tmux the kitty query must pass through to the outer terminal; tmux answers DA1 itself.
    kitty_query = tmux_wrap(KITTY_QUERY) if caps.tmux else KITTY_QUERY
    saved = termios.tcgetattr(fd_in)
    replies = b""
    try:
        tty.setcbreak(fd_in, termios.TCSANOW)
        os.write(fd_out, kitty_query + CELL_SIZE_QUERY + DA1_QUERY)
        deadline = time.monotonic() + timeout
        while not _DA1.search(replies):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd_in], [], [], left)[0]:
                break
            chunk = os.read(fd_in, 4096)
            if not chunk:
                break
            replies += chunk
    finally:
        termios.tcsetattr(fd_in, termios.TCSAFLUSH, saved)
    return parse_replies(caps, replies)


def choose_mode(caps: Capabilities) -> str:
    """The best mode the terminal supports.

    Under tmux kitty images are not chosen on their own: tmux doesn't know they are there, so they
    outlive pane switches and scrolling. Sixel is, when tmux itself reports it (tmux 3.4+).
    """
    if caps.kitty and not caps.tmux:
        return "kitty"
    if caps.sixel:
        return "sixel"
    if caps.truecolor:
        return "halfblock"
    if caps.colors256:
        return "256"
    return "ascii"


def probe(
    env: Mapping[str, str], fd_in: int | None, fd_out: int | None, timeout: float = 0.3
) -> Capabilities:
    """Environment first; then, when both ends are a terminal, the terminal's own answers."""
    caps = from_env(env)
    if fd_in is None or fd_out is None or not (os.isatty(fd_in) and os.isatty(fd_out)):
        return caps
    return query(fd_in, fd_out, caps, timeout)
