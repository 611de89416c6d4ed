"""Frames from the engine to the UI: converted only while watched, scaled to the view's box."""

from __future__ import annotations

import asyncio

import numpy as np

from tcall.engine.media.handle import VideoHandle
from tcall.engine.media.sinks import LatestFrameSink, to_rgb
from tcall.engine.media.tracks import to_video_frame
from tcall.engine.media.video import open_video_source
from tcall.tui.render.fit import letterbox, place


def pattern(n: int = 3) -> np.ndarray:
    async def grab() -> np.ndarray:
        source = open_video_source("pattern", width=640, height=480, fps=1000)
        try:
            return [await source.next_frame() for _ in range(n)][-1]
        finally:
            source.stop()

    return asyncio.run(grab())


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


def test_publishes_only_while_watched() -> None:
    sink, handle = LatestFrameSink(), VideoHandle()
    sink.viewer = handle
    frame = to_video_frame(pattern())
    sink.accept(frame)
    assert handle.remote() == (0, None)
    handle.watching = True
    sink.accept(frame)
    count, rgb = handle.remote()
    assert count == 1 and rgb is not None and rgb.shape == (480, 640, 3)
    handle.fit = (160, 94)
    sink.accept(frame)
    count, rgb = handle.remote()
    assert count == 2 and rgb is not None and rgb.shape == (94, 125, 3)


def test_reduced_frame_matches_the_reference() -> None:
    """Scaling the planes before converting gives the picture the UI got by converting the whole
    frame (libswscale) and scaling it: within conversion rounding."""
    frame = to_video_frame(pattern())
    reference = np.asarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8)
    for box in [(160, 94), (80, 46), (26, 16), (400, 300), (640, 480), (1000, 1000)]:
        p = place(640, 480, *box)
        expected = letterbox(reference, p.w, p.h)
        got = to_rgb(frame, box)
        assert got.shape == expected.shape
        assert psnr(got, expected) > 40, box
        # and the UI then has nothing left to scale: the letterbox of the box keeps it as it is
        canvas = letterbox(got, *box)
        assert (canvas[p.y : p.y + p.h, p.x : p.x + p.w] == got).all()
    assert psnr(to_rgb(frame), reference) > 45


def test_odd_sizes_and_other_formats_still_convert() -> None:
    frame = to_video_frame(pattern()[:479, :639])  # odd: the rgb24 path
    assert to_rgb(frame, (160, 94)).shape[:2] == (94, 125)
    assert to_rgb(frame).shape == (479, 639, 3)
