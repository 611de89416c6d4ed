"""Delta updates rebuild exactly the frame; the writer drops frames instead of queueing them."""

from __future__ import annotations

import os

import numpy as np

from tests.render.decoders import screen_of
from tui.render.cells import RESET
from tui.render.delta import SYNC_BEGIN, SYNC_END, TextScreen
from tui.render.halfblock import HalfBlockEncoder
from tui.render.palette256 import Palette256Encoder
from tui.render.writer import FrameWriter


def moving_square(n: int, size: int = 48) -> list[np.ndarray]:
    rng = np.random.default_rng(5)
    background = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    frames = []
    for i in range(n):
        f = background.copy()
        f[10 + i : 18 + i, 4 + 2 * i : 12 + 2 * i] = [250, 20, 20]
        frames.append(f)
    return frames


def test_deltas_rebuild_the_same_screen_as_full_frames() -> None:
    for enc in (HalfBlockEncoder(), Palette256Encoder()):
        screen = TextScreen(top=1, left=2)
        stream = b""
        for frame in moving_square(6):
            stream += screen.update(enc.grid(frame, 24, 12))
        full = TextScreen(top=1, left=2).update(enc.grid(moving_square(6)[-1], 24, 12))
        a, b = screen_of(stream, 30, 15), screen_of(full, 30, 15)
        assert a.display == b.display
        assert [[(c.fg, c.bg) for c in a.buffer[y].values()] for y in range(15)] == [
            [(c.fg, c.bg) for c in b.buffer[y].values()] for y in range(15)
        ]


def test_still_picture_costs_nothing_and_moving_square_little() -> None:
    enc = HalfBlockEncoder()
    screen = TextScreen()
    frames = moving_square(3)
    first = screen.update(enc.grid(frames[0], 24, 12))
    assert first.startswith(SYNC_BEGIN) and first.endswith(SYNC_END)
    assert screen.update(enc.grid(frames[0], 24, 12)) == b""
    second = screen.update(enc.grid(frames[1], 24, 12))
    assert 0 < len(second) < len(first) / 3
    assert second.count(RESET) <= 6  # only the rows the square touches


def test_invalidate_forces_a_whole_frame() -> None:
    enc = HalfBlockEncoder()
    screen = TextScreen()
    frame = moving_square(1)[0]
    whole = screen.update(enc.grid(frame, 24, 12))
    screen.invalidate()
    assert screen.update(enc.grid(frame, 24, 12)) == whole


def test_writer_drops_frames_and_slows_down_when_the_pipe_is_full() -> None:
    r, w = os.pipe()
    os.set_blocking(w, False)
    try:
        writer = FrameWriter(w, max_fps=30, min_fps=2)
        big = b"x" * (1 << 20)  # more than a pipe buffer holds
        assert writer.offer(0.0)
        writer.submit(big, 0.0)
        assert writer.busy
        for i in range(1, 20):
            assert not writer.offer(i / 30)
        assert writer.dropped == 19
        assert writer.fps == 2  # backed off to the floor
        while writer.busy:  # the reader catches up
            os.read(r, 1 << 20)
            writer.pump()
        assert writer.written == 1
        os.read(r, 1 << 20)  # what the last pump left in the pipe
        assert writer.offer(10.0)
        writer.submit(b"small", 10.0)
        assert not writer.busy and writer.fps > 2  # recovering
        assert not writer.offer(10.0 + 0.01)  # but still keeps to its rate
        assert writer.skipped == 1
    finally:
        os.close(r)
        os.close(w)
