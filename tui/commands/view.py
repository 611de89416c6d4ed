"""`tcall view SOURCE`: play a video source in this terminal, to check what the terminal can show.

On a terminal it draws in the alternate screen and adapts its rate to what the terminal takes;
when stdout is a pipe or a file it writes every encoded frame, so the output can be saved or
measured.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import sys
import time
from dataclasses import dataclass

import click

from tcall.engine.errors import ExitCode, UsageError
from tcall.engine.media.video import VIDEO_SPECS, open_video_source
from tcall.engine.settings import Settings
from tcall.tui.cli import Bounded
from tcall.tui.render import RENDER_MODES, TEXT_MODES, make_encoder, make_text_encoder
from tcall.tui.render.delta import NOISE_TOLERANCE, TextScreen, cup, synchronized
from tcall.tui.render.fit import Frame
from tcall.tui.render.kitty import KittyEncoder
from tcall.tui.render.probe import choose_mode, probe
from tcall.tui.render.writer import FrameWriter

ENTER = b"\x1b[?1049h\x1b[?25l\x1b[2J"
LEAVE = b"\x1b[0m\x1b[?25h\x1b[?1049l"
DEFAULT_SIZE = (80, 24)


def parse_size(text: str) -> tuple[int, int]:
    """`COLSxROWS` -> (cols, rows)."""
    match = re.fullmatch(r"([0-9]{1,4})[xX]([0-9]{1,4})", text.strip())
    if not match or not (0 < int(match.group(1)) <= 2000 and 0 < int(match.group(2)) <= 1000):
        raise UsageError(f"bad --size {text!r}: expected COLSxROWS, for example 120x40")
    return int(match.group(1)), int(match.group(2))


@dataclass
class Player:
    """Encodes frames for one box of the screen, in one mode."""

    mode: str
    cols: int
    rows: int
    cell_px: tuple[int, int]
    tmux: bool

    def __post_init__(self) -> None:
        self.screen = TextScreen(tolerance=NOISE_TOLERANCE)
        self.text = make_text_encoder(self.mode) if self.mode in TEXT_MODES else None
        self.graphics = None if self.text else make_encoder(self.mode, self.cell_px, self.tmux)

    def resize(self, cols: int, rows: int) -> None:
        self.cols, self.rows = cols, rows
        self.screen.invalidate()

    def frame_bytes(self, frame: Frame) -> bytes:
        if self.text is not None:
            return self.screen.update(self.text.grid(frame, self.cols, self.rows))
        assert self.graphics is not None
        return synchronized(cup(0, 0) + self.graphics.encode(frame, self.cols, self.rows))

    def closing_bytes(self) -> bytes:
        return self.graphics.clear() if isinstance(self.graphics, KittyEncoder) else b""


async def play(
    spec: str, mode: str, size: tuple[int, int] | None, frames: int | None, fps: float
) -> None:
    """Play `spec` on stdout until `frames` frames were written (or forever)."""
    out = sys.stdout.fileno()
    is_tty = os.isatty(out)
    stdin = sys.stdin.fileno() if sys.stdin is not None and sys.stdin.isatty() else None
    caps = probe(os.environ, stdin, out if is_tty else None)
    if mode == "auto":
        mode = choose_mode(caps)
    follow_terminal = size is None
    if size is None:
        size = shutil.get_terminal_size(DEFAULT_SIZE) if is_tty else DEFAULT_SIZE
    player = Player(mode, size[0], size[1], caps.cell_px or (10, 20), caps.tmux)
    source = open_video_source(spec, width=640, height=480, fps=fps)
    loop = asyncio.get_running_loop()
    writer = FrameWriter(out, max_fps=fps)
    blocking = os.get_blocking(out)

    idle = asyncio.Event()
    idle.set()

    def pump() -> None:
        writer.pump()
        if not writer.busy:
            loop.remove_writer(out)
            idle.set()

    def on_resize() -> None:
        cols, rows = shutil.get_terminal_size(DEFAULT_SIZE)
        os.write(out, b"\x1b[2J")
        player.resize(cols, rows)

    try:
        if is_tty:
            os.write(out, ENTER)
            os.set_blocking(out, False)
            if follow_terminal:
                loop.add_signal_handler(signal.SIGWINCH, on_resize)
        shown = 0
        while frames is None or shown < frames:
            # Take no frame while one is still being written: the next one shown is the newest.
            await idle.wait()
            frame = await source.next_frame()
            now = time.monotonic()
            if is_tty:
                if not writer.offer(now):
                    continue
                writer.submit(player.frame_bytes(frame), now)
                if writer.busy:
                    idle.clear()
                    loop.add_writer(out, pump)
            else:
                sys.stdout.buffer.write(player.frame_bytes(frame))
            shown += 1
    finally:
        source.stop()
        if is_tty:
            loop.remove_writer(out)
            loop.remove_signal_handler(signal.SIGWINCH)
            writer.drain()
            os.set_blocking(out, blocking)
            os.write(out, player.closing_bytes() + LEAVE)
        else:
            sys.stdout.buffer.write(player.closing_bytes())
            sys.stdout.buffer.flush()


@click.command("view", help=f"Play SOURCE ({VIDEO_SPECS}) in this terminal.")
@click.argument("source")
@click.option(
    "--render",
    "render_mode",
    type=click.Choice(RENDER_MODES),
    default=None,
    help="Render mode; default: the `render` setting (auto picks the best the terminal has).",
)
@click.option("--size", default=None, help="Box size in cells, COLSxROWS (default: the terminal).")
@click.option(
    "--frames", type=click.IntRange(min=1, max=10**7), default=None, help="Stop after N frames."
)
@click.option("--fps", type=Bounded(min=1, max=120), default=30.0, show_default=True)
def command(
    source: str, render_mode: str | None, size: str | None, frames: int | None, fps: float
) -> int:
    mode = render_mode or Settings.load().render
    asyncio.run(play(source, mode, parse_size(size) if size is not None else None, frames, fps))
    return ExitCode.OK
