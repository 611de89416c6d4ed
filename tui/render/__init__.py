"""Frame-to-terminal encoders (half-block, 256-colour, ASCII, sixel, kitty) and how to pick one."""

from __future__ import annotations

from typing import Protocol

from tcall.engine.errors import UsageError
from tcall.tui.render.ascii import AsciiEncoder
from tcall.tui.render.fit import Frame
from tcall.tui.render.halfblock import HalfBlockEncoder
from tcall.tui.render.kitty import KittyEncoder
from tcall.tui.render.palette256 import Palette256Encoder
from tcall.tui.render.sixel import SixelEncoder
from tcall.tui.render.textmode import TextEncoder

RENDER_MODES = ("auto", "halfblock", "256", "ascii", "sixel", "kitty")
TEXT_MODES = ("halfblock", "256", "ascii")


class Encoder(Protocol):
    """Takes a frame and a box in cells; returns the bytes that draw it from the cursor."""

    mode: str

    def encode(self, frame: Frame, cols: int, rows: int) -> bytes: ...


def make_encoder(mode: str, cell_px: tuple[int, int] = (10, 20), tmux: bool = False) -> Encoder:
    """The encoder for a concrete mode (not "auto": resolve that with `probe.choose_mode`)."""
    cell_w, cell_h = cell_px
    if mode == "halfblock":
        return HalfBlockEncoder()
    if mode == "256":
        return Palette256Encoder()
    if mode == "ascii":
        return AsciiEncoder()
    if mode == "sixel":
        return SixelEncoder(cell_w, cell_h)
    if mode == "kitty":
        return KittyEncoder(cell_w=cell_w, cell_h=cell_h, tmux=tmux)
    raise UsageError(f"unknown render mode {mode!r} (choose from {', '.join(RENDER_MODES)})")


# Live views round truecolor channels to multiples of this (see HalfBlockEncoder).
LIVE_COLOUR_STEP = 4


def make_text_encoder(mode: str) -> TextEncoder:
    """The text-mode encoder for live video; graphics modes fall back to truecolor half-blocks."""
    if mode == "256":
        return Palette256Encoder()
    if mode == "ascii":
        return AsciiEncoder()
    return HalfBlockEncoder(LIVE_COLOUR_STEP)


__all__ = ["RENDER_MODES", "TEXT_MODES", "Encoder", "Frame", "make_encoder", "make_text_encoder"]
