"""Media sources in real time: pacing, looping, a sine tone, and clear errors for bad sources."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from tcall.engine.errors import DeviceError, UsageError
from tcall.engine.media.audio import BLOCK, open_audio_source
from tcall.engine.media.video import open_video_source


def _write_clip(path: Path, fps: float, frames: int) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (160, 120))
    for i in range(frames):
        writer.write(np.full((120, 160, 3), i * 8 % 256, dtype=np.uint8))
    writer.release()


async def _count_frames(spec: str, seconds: float) -> int:
    source = open_video_source(spec)
    count = 0
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            await source.next_frame()
            count += 1
    finally:
        source.stop()
    return count


def test_file_source_keeps_to_its_own_fps_and_loops(tmp_path: Path) -> None:
    clip = tmp_path / "clip.avi"
    _write_clip(clip, fps=10, frames=5)  # half a second long, so 2 s of playback loops it
    count = asyncio.run(_count_frames(f"file:{clip}", 2.0))
    assert 14 <= count <= 24  # 10 fps for 2 s; unpaced OpenCV would give thousands


def test_pattern_source_is_paced_and_moves() -> None:
    async def grab() -> tuple[int, list[np.ndarray]]:
        source = open_video_source("pattern", 320, 240, fps=20)
        frames = [await source.next_frame() for _ in range(3)]
        count = 3 + await _count_frames("pattern", 1.0)
        return count, frames

    count, frames = asyncio.run(grab())
    assert frames[0].shape == (240, 320, 3) and frames[0].dtype == np.uint8
    assert not np.array_equal(frames[0], frames[2])
    assert count < 45


def test_sine_source_blocks() -> None:
    async def grab() -> np.ndarray:
        source = open_audio_source("sine")
        return await source.next_block()

    block = asyncio.run(grab())
    assert block.shape == (BLOCK,) and block.dtype == np.int16 and block.max() > 5000


def test_bad_sources_raise_tcall_errors(tmp_path: Path) -> None:
    async def attempt(spec: str) -> None:
        open_video_source(spec)

    with pytest.raises(UsageError):
        asyncio.run(attempt("camera:x"))
    with pytest.raises(DeviceError, match="video file not found"):
        asyncio.run(attempt(f"file:{tmp_path / 'missing.mp4'}"))
    (tmp_path / "junk.mp4").write_bytes(b"not a video")
    with pytest.raises(DeviceError, match="cannot read video file"):
        asyncio.run(attempt(f"file:{tmp_path / 'junk.mp4'}"))
