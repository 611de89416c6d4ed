"""Delta updates rebuild exactly the frame; the writer drops frames instead of queueing them."""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np

from tcall.tui.render.cells import RESET, pack
from tcall.tui.render.delta import (
    SYNC_BEGIN,
    SYNC_END,
    TextScreen,
    cup,
    cursor_moves,
    span_bytes,
    spans,
)
from tcall.tui.render.halfblock import HalfBlockEncoder
from tcall.tui.render.palette256 import Palette256Encoder
from tcall.tui.render.writer import FrameWriter, QueueWriter
from tests.support.decoders import screen_of


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


def test_writer_drops_frames_while_one_is_in_flight_and_follows_the_link_rate() -> None:
    r, w = os.pipe()
    os.set_blocking(w, False)
    clock = [0.0]
    try:
        writer = FrameWriter(w, max_fps=30, min_fps=2, clock=lambda: clock[0])
        big = b"x" * (1 << 20)  # more than a pipe buffer holds
        assert writer.offer(0.0)
        writer.submit(big, 0.0)
        assert writer.busy
        for i in range(1, 20):
            assert not writer.offer(i / 30)  # dropped, never queued
        assert writer.dropped == 19 and writer.written == 0
        clock[0] = 0.5  # the reader took half a second to take the frame
        while writer.busy:
            os.read(r, 1 << 20)
            writer.pump()
        assert writer.written == 1
        assert 2 < writer.fps < 30  # estimated from the slow drain: moved towards 2 fps
        slow = writer.fps
        os.read(r, 1 << 20)  # what the last pump left in the pipe
        # The next frame goes out at once: the rate comes from the link, not from a back-off timer.
        assert writer.offer(0.51)
        writer.submit(b"small", 0.51)
        assert not writer.busy and writer.fps > slow  # it drained at once: recovering
        assert not writer.offer(0.51 + 0.005)  # but keeps to max_fps
        assert writer.skipped == 1
        assert writer.offer(0.51 + 1 / 30)
    finally:
        os.close(r)
        os.close(w)


def test_hidden_cells_are_never_written_nor_bridged() -> None:
    changed = np.array([[1, 1, 0, 1, 1, 0, 0, 0, 1]], dtype=bool)
    row, first, end = spans(changed, merge_gap=3)
    assert (first.tolist(), end.tolist()) == ([0, 8], [5, 9])
    barrier = np.zeros_like(changed)
    barrier[0, 2] = True  # an overlay's cell between two changed runs
    row, first, end = spans(changed, merge_gap=3, barrier=barrier)
    assert (first.tolist(), end.tolist()) == ([0, 3, 8], [2, 5, 9])
    frames = moving_square(2)
    visible = np.ones((12, 24), dtype=bool)
    visible[3:6, 4:10] = False
    screen = TextScreen(top=2, left=3)
    stream = screen.update(HalfBlockEncoder().grid(frames[0], 24, 12), visible)
    stream += screen.update(HalfBlockEncoder().grid(frames[1], 24, 12), visible)
    shown = screen_of(stream, 30, 16)
    assert all(shown.buffer[y][x].data == " " for y in range(5, 8) for x in range(7, 13))
    assert shown.buffer[4][7].data == shown.buffer[8][12].data == "▀"


def test_cursor_moves_match_cup() -> None:
    rows = np.array([0, 9, 10, 99, 100, 998])
    cols = np.array([0, 1, 999, 1000, 5, 9998])
    moves = pack(cursor_moves(rows, cols))
    assert moves == b"".join(cup(r, c) for r, c in zip(rows.tolist(), cols.tolist(), strict=True))


def test_queue_writer_keeps_one_waiting_frame_and_never_queues() -> None:
    untaken: list[str] = []  # what the writer thread has not taken yet
    sent: list[str] = []
    polls: list[Callable[[], None]] = []

    def write(text: str) -> None:
        sent.append(text)
        untaken.append(text)

    writer = QueueWriter(
        write,
        lambda: len(untaken),
        lambda delay, poll: polls.append(poll),
    )
    retried: list[str] = []
    assert writer.offer(lambda: retried.append("first"))
    writer.submit("▀ frame".encode())
    assert sent == ["▀ frame", ""] and writer.busy and writer.written == 1
    assert not writer.offer(lambda: retried.append("second"))
    assert writer.waiting
    assert not writer.offer(lambda: retried.append("third"))  # replaces the second: dropped
    assert writer.dropped == 1 and len(polls) == 1
    polls.pop()()  # the frame is still on its way: look again later
    assert len(polls) == 1 and retried == []
    untaken.clear()  # the thread took the frame and the marker after it
    polls.pop()()
    assert retried == ["third"] and polls == [] and len(sent) == 2 and not writer.waiting


def test_no_spans_encode_to_nothing() -> None:
    grid = HalfBlockEncoder().grid(np.zeros((8, 8, 3), dtype=np.uint8), 8, 4)
    none = np.zeros(0, dtype=np.int64)
    assert span_bytes(grid, none, none, none, 0, 0) == b""
