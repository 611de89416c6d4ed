"""Video sources chosen by a spec string: camera, camera:N, file:PATH, pattern (or none).

Every source hands out the latest RGB frame (H×W×3 uint8) through `await next_frame()`, paced to its
own frame rate. Camera and file sources read in a capture thread, because OpenCV blocks; the thread keeps
only the newest frame, so a slow consumer drops frames instead of queueing them.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path

import numpy as np

from tcall.engine.errors import DeviceError, UsageError
from tcall.engine.media import timecode

# OpenCV prints a warning per failed open; tcall raises its own error that names the device instead.
os.environ.setdefault("OPENCV_LOG_LEVEL", "OFF")
import cv2  # noqa: E402

VIDEO_SPECS = "camera|camera:N|file:PATH|pattern|none"


class VideoSource:
    """A paced producer of RGB frames."""

    fps: float
    width: int
    height: int
    name: str

    async def next_frame(self) -> np.ndarray:
        raise NotImplementedError

    def stop(self) -> None:
        """Release the device or file; safe to call twice."""


class PatternSource(VideoSource):
    """Moving colour bars with a timecode, generated on demand at a fixed rate."""

    def __init__(self, width: int, height: int, fps: float) -> None:
        self.width, self.height, self.fps, self.name = width, height, fps, "pattern"
        x = np.linspace(0, 1, width, dtype=np.float32)
        y = np.linspace(0, 1, height, dtype=np.float32)[:, None]
        base = np.empty((height, width, 3), dtype=np.uint8)
        base[..., 0] = (255 * x).astype(np.uint8)
        base[..., 1] = (255 * y).astype(np.uint8)
        base[..., 2] = (255 * (1 - x * y)).astype(np.uint8)
        self._base = base
        self._box = max(8, min(width, height) // 6)
        self._count = 0
        self._start: float | None = None

    async def next_frame(self) -> np.ndarray:
        loop_time = time.monotonic()
        if self._start is None:
            self._start = loop_time
        due = self._start + self._count / self.fps
        if due > loop_time:
            await asyncio.sleep(due - loop_time)
        elif loop_time - due > 1.0:
            self._start = loop_time - self._count / self.fps  # we fell far behind: do not burst
        self._count += 1
        return self._draw(self._count)

    def _draw(self, count: int) -> np.ndarray:
        frame = np.roll(self._base, count * 4, axis=1)
        size = self._box
        top = timecode.code_height(self.width) + 4
        span_x, span_y = self.width - size, max(1, self.height - size - top)
        x = (count * 7) % (2 * span_x)
        y = (count * 5) % (2 * span_y)
        x = x if x < span_x else 2 * span_x - x
        y = top + (y if y < span_y else 2 * span_y - y)
        frame[y : y + size, x : x + size] = (255, 255, 255)
        timecode.stamp(frame, timecode.now_ms())
        return frame


class CaptureThreadSource(VideoSource):
    """An OpenCV capture read in a thread that keeps only the newest frame."""

    def __init__(self, capture: cv2.VideoCapture, name: str, paced: bool, fps: float) -> None:
        self.name = name
        self.fps = fps
        self.width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        self.height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self._capture = capture
        self._paced = paced  # files read at ~2000 fps unpaced; cameras pace themselves
        self._latest: np.ndarray | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._loop = asyncio.get_running_loop()
        self._fresh = asyncio.Event()
        self._failed: str | None = None
        self._thread = threading.Thread(target=self._run, name=f"capture-{name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        interval = 1.0 / self.fps
        due = time.monotonic()
        while not self._stopping.is_set():
            ok, bgr = self._capture.read()
            if not ok and self._paced:
                self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0)  # loop the file
                ok, bgr = self._capture.read()
            if not ok:
                self._failed = f"{self.name} stopped delivering frames"
                self._loop.call_soon_threadsafe(self._fresh.set)
                return
            with self._lock:
                self._latest = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            try:
                self._loop.call_soon_threadsafe(self._fresh.set)
            except RuntimeError:
                return  # the loop closed under us
            if self._paced:
                due += interval
                delay = due - time.monotonic()
                if delay > 0:
                    self._stopping.wait(delay)
                else:
                    due = time.monotonic()

    async def next_frame(self) -> np.ndarray:
        await self._fresh.wait()
        self._fresh.clear()
        if self._failed:
            raise DeviceError(self._failed)
        with self._lock:
            assert self._latest is not None
            return self._latest

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=2)
        self._capture.release()


def _open_camera(index: int, width: int, height: int, fps: float) -> VideoSource:
    device = f"/dev/video{index}"
    if os.name == "posix" and not Path(device).exists():
        raise DeviceError(f"no camera: {device} does not exist")
    capture = cv2.VideoCapture(index)
    if not capture.isOpened():
        raise DeviceError(f"camera {device} could not be opened")
    capture.set(cv2.CAP_PROP_FRAME_WIDTH, width)
    capture.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
    capture.set(cv2.CAP_PROP_FPS, fps)
    camera_fps = capture.get(cv2.CAP_PROP_FPS) or fps
    return CaptureThreadSource(capture, f"camera {device}", paced=False, fps=camera_fps)


def _open_file(path: str) -> VideoSource:
    if not Path(path).is_file():
        raise DeviceError(f"video file not found: {path}")
    capture = cv2.VideoCapture(path)
    if not capture.isOpened() or not capture.read()[0]:
        capture.release()
        raise DeviceError(f"cannot read video file: {path}")
    capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
    file_fps = capture.get(cv2.CAP_PROP_FPS)
    if not file_fps or file_fps != file_fps or file_fps > 240:
        file_fps = 30.0
    return CaptureThreadSource(capture, f"file {path}", paced=True, fps=file_fps)


def camera_available(index: int = 0) -> bool:
    return Path(f"/dev/video{index}").exists()


def parse_video_spec(spec: str) -> tuple[str, str]:
    """Split a spec into (kind, argument), or UsageError before any device is touched."""
    kind, _, arg = spec.partition(":")
    if kind in ("pattern", "none", "auto") and not arg:
        return kind, arg
    if kind == "camera" and (not arg or arg.isdigit()):
        return kind, arg
    if kind == "file" and arg:
        return kind, arg
    raise UsageError(f"unknown video source {spec!r} (expected {VIDEO_SPECS})")


def open_video_source(
    spec: str, width: int = 640, height: int = 480, fps: float = 30
) -> VideoSource:
    """Open the source named by `spec`; must be called from a running event loop."""
    kind, arg = parse_video_spec(spec)
    if kind == "pattern":
        return PatternSource(width, height, fps)
    if kind == "camera":
        return _open_camera(int(arg or 0), width, height, fps)
    if kind == "file":
        return _open_file(arg)
    raise UsageError(f"video source {spec!r} cannot be opened directly")
