"""Should the engine share Textual's event loop, or run on its own loop in a thread?

Runs a real echo call (640x480 pattern, VP8, loopback ICE) while a headless Textual app shows the
remote video in a `VideoView`, once per arrangement:

- shared: the call runs in a worker on Textual's loop; the view is fed by awaiting new frames.
- thread: the call runs on a second loop in a thread; the view polls the latest frame at 30 Hz.

For each it prints the UI loop's lag (how late a 5 ms timer fires: what a key press waits), the
frames the view showed per second, and the process CPU time per wall second.

Run: `python bench/tui_loop.py [SECONDS] [COLSxROWS]` (defaults 8 s, 160x48).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from textual.app import App, ComposeResult

from tcall.engine.call import CallOptions, run_call
from tcall.engine.echo import EchoPeer
from tcall.engine.session import Session
from tcall.tui.widgets import VideoView

os.environ.setdefault("TCALL_ICE_ADDRESSES", "127.0.0.1")
OPTIONS = CallOptions(video="pattern", audio="sine")


async def echo_call(stop: asyncio.Event, on_session: Callable[[Session], None]) -> None:
    echo = EchoPeer(OPTIONS.ice)

    async def connect(session: Session) -> None:
        on_session(session)
        await session.accept_answer(await echo.answer(await session.create_offer()))

    try:
        await run_call(OPTIONS, connect, lambda _event: None, stop)
    finally:
        await echo.close()


class Bench(App[None]):
    def __init__(self, mode: str, seconds: float) -> None:
        super().__init__()
        self.mode, self.seconds = mode, seconds
        self.lags: list[float] = []
        self.shown = 0
        self.session: Session | None = None

    def compose(self) -> ComposeResult:
        yield VideoView()

    def show(self) -> None:
        if self.session is not None and (frame := self.session.video_sink.latest_rgb()) is not None:
            self.query_one(VideoView).show_frame(frame)
            self.shown += 1

    async def measure(self) -> None:
        while self.session is None or self.session.video_sink.frames_received == 0:
            await asyncio.sleep(0.05)
        end = time.monotonic() + self.seconds
        while (now := time.monotonic()) < end:
            await asyncio.sleep(0.005)
            self.lags.append((time.monotonic() - now - 0.005) * 1000)


def set_session(app: Bench) -> Callable[[Session], None]:
    def hook(session: Session) -> None:
        app.session = session

    return hook


async def shared(app: Bench) -> tuple[Awaitable[Any], Callable[[], None]]:
    stop = asyncio.Event()
    call = asyncio.ensure_future(echo_call(stop, set_session(app)))

    async def pump() -> None:
        while True:
            if app.session is None:
                await asyncio.sleep(0.02)
                continue
            await app.session.video_sink.wait_frame()
            app.show()

    pumping = asyncio.ensure_future(pump())

    def finish() -> None:
        pumping.cancel()
        stop.set()

    return call, finish


async def threaded(app: Bench) -> tuple[Awaitable[Any], Callable[[], None]]:
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    future = asyncio.run_coroutine_threadsafe(echo_call(stop, set_session(app)), loop)
    timer = app.set_interval(1 / 30, app.show)

    def finish() -> None:
        timer.stop()
        loop.call_soon_threadsafe(stop.set)

    async def done() -> None:
        await asyncio.wrap_future(future)
        loop.call_soon_threadsafe(loop.stop)
        thread.join()

    return done(), finish


async def run(mode: str, seconds: float, size: tuple[int, int]) -> dict[str, float]:
    app = Bench(mode, seconds)
    async with app.run_test(size=size):
        call, finish = await (shared(app) if mode == "shared" else threaded(app))
        cpu0, wall0 = time.process_time(), time.monotonic()
        await app.measure()
        cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
        finish()
        await call
    lags = sorted(app.lags)
    return {
        "lag_p50_ms": statistics.median(lags),
        "lag_p99_ms": lags[int(len(lags) * 0.99)],
        "lag_max_ms": lags[-1],
        "shown_fps": app.shown / wall,
        "cpu_per_s": cpu / wall,
    }


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 8.0
    cols, rows = (int(v) for v in (sys.argv[2] if len(sys.argv) > 2 else "160x48").split("x"))
    print(f"echo call, 640x480 VP8, view {cols}x{rows} cells, {seconds:g} s each")
    print(f"{'mode':8} {'lag p50':>8} {'lag p99':>8} {'lag max':>8} {'shown fps':>10} {'cpu/s':>6}")
    for mode in ("shared", "thread"):
        r = asyncio.run(run(mode, seconds, (cols, rows)))
        print(
            f"{mode:8} {r['lag_p50_ms']:8.2f} {r['lag_p99_ms']:8.2f} {r['lag_max_ms']:8.2f}"
            f" {r['shown_fps']:10.1f} {r['cpu_per_s']:6.2f}"
        )


if __name__ == "__main__":
    main()
