"""The app during a call: CPU of the whole process and the UI loop's lag, beside the headless engine.

Each run places the same real call twice, each in its own process with its own `TCALL_HOME`: the
echo call (`Phone.dial("echo")`: 640x480@30 pattern video, VP8, and a sine both ways, loopback ICE;
the echo peer's encoder and decoder run in the same process):

- headless: the engine alone on asyncio, nobody watching the video (what `tcall call echo` costs);
- app: the real `TcallApp` in a detached COLSxROWS tmux (truecolor, half-blocks) dialling the echo
  test from its contacts screen, so the call screen shows the remote video and the self-view, with
  the engine on its own loop in a thread; `app+stats` is the same with the stats box open, and
  `app-before` the frame path as it was before the engine scaled frames for the view (each whole
  frame converted by libswscale, then scaled down on the UI's thread).

For each it prints the CPU % of one core of the whole process (all threads, from `process_time`
over the measured window, after a warm-up), the frames the remote view showed per second, and for
the app the UI loop's lag (how late a 5 ms sleep on Textual's loop wakes: what a key press waits).
The 2-core machine is shared, so the figures that matter are app / headless within one run.

Run: `python bench/tui_loop.py [RUNS] [SECONDS] [COLSxROWS]` (defaults 3 runs, 8 s, 160x48; needs
tmux). The shared-loop vs thread comparison this file used to make is gone with the engine API:
the engine always runs on its own loop in a thread (README, "Benchmarks").
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

WARMUP_S = 3.0
HERE = Path(__file__).resolve()
TCALL = str(Path(sys.executable).with_name("tcall"))
MEDIA = ["--video", "pattern", "--audio", "sine"]


def _env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(TCALL_HOME=str(home), TCALL_ICE_ADDRESSES="127.0.0.1", COLORTERM="truecolor")
    return env


# --- headless --------------------------------------------------------------------------------


async def headless(peer: str, seconds: float, result: Path) -> None:
    from tcall.engine.call import CallOptions
    from tcall.engine.phone import Phone

    phone = Phone(lambda _event: None)
    if peer != "echo":
        await phone.start()
    call = await phone.dial(peer, CallOptions(video="pattern", audio="sine"))
    await asyncio.sleep(WARMUP_S)
    count0 = call.video.remote()[0]
    sink_frames = _sink_frames(phone, call.call_id)
    cpu0, wall0 = time.process_time(), time.monotonic()
    await asyncio.sleep(seconds)
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    received = _sink_frames(phone, call.call_id) - sink_frames
    await phone.hangup(call.call_id)
    await asyncio.wait_for(call.done, 10)
    await phone.close()
    assert call.video.remote()[0] == count0  # nobody watched: nothing was converted
    result.write_text(json.dumps({"cpu": cpu / wall * 100, "fps": received / wall}))


def _sink_frames(phone: Any, call_id: str) -> int:
    live = phone._calls.get(call_id)  # a bench may peek: the frames the engine decoded
    return 0 if live is None or live.session is None else live.session.video_sink.frames_received


# --- the app -----------------------------------------------------------------------------------


def app(peer: str, seconds: float, result: Path, stats: bool, before: bool = False) -> None:
    from tcall.engine.call import CallOptions
    from tcall.engine.media import sinks
    from tcall.tui.widgets import VideoView

    if before:  # the frame path as it was: whole frames through libswscale, scaled by the UI
        sinks.to_rgb = lambda frame, box=None: frame.to_ndarray(format="rgb24")
        VideoView.pixel_box = lambda self: None  # type: ignore[method-assign]
    from tcall.tui.app import TcallApp
    from tcall.tui.screens.call import CallScreen
    from tcall.tui.screens.contacts import ECHO, Dial

    class Bench(TcallApp):
        CSS_PATH = str(Path(sys.modules[TcallApp.__module__].__file__ or "").with_name("app.tcss"))

        def call_options(self, video: bool) -> CallOptions:
            return CallOptions(video="pattern", audio="sine")

        def on_mount(self) -> None:
            super().on_mount()
            self.run_worker(self.measure(), exit_on_error=True)

        async def measure(self) -> None:
            if peer != "echo":
                while self.relay_state != "online":
                    await asyncio.sleep(0.05)
            self.post_message(Dial(ECHO if peer == "echo" else peer, True))
            while not isinstance(self.screen, CallScreen) or self.screen.video_handle is None:
                await asyncio.sleep(0.05)
            screen = self.screen
            handle = screen.video_handle
            assert handle is not None
            if stats:
                screen.action_stats()
            await asyncio.sleep(WARMUP_S)
            view = screen.remote
            writer = view.writer
            shown0 = writer.written if writer is not None else 0
            count0 = handle.remote()[0]
            lags: list[float] = []
            cpu0, wall0 = time.process_time(), time.monotonic()
            while (now := time.monotonic()) - wall0 < seconds:
                await asyncio.sleep(0.005)
                lags.append((time.monotonic() - now - 0.005) * 1000)
            cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
            shown = (writer.written if writer is not None else 0) - shown0
            lags.sort()
            result.write_text(
                json.dumps(
                    {
                        "cpu": cpu / wall * 100,
                        "fps": shown / wall,
                        "published": (handle.remote()[0] - count0) / wall,
                        "lag50": statistics.median(lags),
                        "lag99": lags[int(len(lags) * 0.99)],
                    }
                )
            )
            self.exit()

    Bench().run()


def in_tmux(argv: list[str], env: dict[str, str], cols: int, rows: int, timeout: float) -> str:
    """Run `argv` in a detached cols x rows tmux session until it exits; its stderr."""
    tmux = ["tmux", "-L", f"bench-{uuid.uuid4().hex[:8]}"]
    done = Path(tempfile.mkdtemp()) / "done"
    log = done.with_name("log")
    command = " ".join(f"'{a}'" for a in argv) + f" 2>'{log}'; touch '{done}'"
    extra = [
        x
        for k in ("TCALL_HOME", "TCALL_ICE_ADDRESSES", "COLORTERM")
        for x in ("-e", f"{k}={env[k]}")
    ]
    subprocess.run(
        [*tmux, "new-session", "-d", "-x", str(cols), "-y", str(rows), *extra, command],
        check=True,
        env=env,
    )
    try:
        deadline = time.monotonic() + timeout
        while not done.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        subprocess.run([*tmux, "kill-server"], check=False, capture_output=True)
    return log.read_text() if log.exists() else ""


def one(kind: str, peer: str, home: Path, seconds: float, cols: int, rows: int) -> dict[str, float]:
    result, env = Path(tempfile.mkdtemp()) / "result", _env(home)
    argv = [sys.executable, str(HERE), f"--{kind}", peer, str(seconds), str(result)]
    log = ""
    if kind == "headless":
        subprocess.run(argv, env=env, check=True, timeout=seconds + 60)
    else:
        log = in_tmux(argv, env, cols, rows, seconds + 60)
    if not result.exists():
        raise SystemExit(f"{kind}: no result; its stderr:\n{log}")
    return dict(json.loads(result.read_text()))


class RelayPair:
    """A `tcall serve` on loopback and two users, alice (measured) and bob (`tcall listen
    --auto-answer` with the pattern and a sine), each a contact of the other."""

    def __init__(self, tmp: Path) -> None:
        port = _free_port()
        self.url = f"ws://127.0.0.1:{port}"
        self.serve = subprocess.Popen(
            [TCALL, "serve", "--host", "127.0.0.1", "--port", str(port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.serve.stdout is not None and "listening" in self.serve.stdout.readline()
        self.alice, self.bob = tmp / "alice", tmp / "bob"
        address = {}
        for home in (self.alice, self.bob):
            self.tcall(home, "settings", "set", "relay_url", self.url)
            address[home] = json.loads(self.tcall(home, "id", "--json"))["address"]
        self.tcall(self.alice, "contacts", "add", "bob", address[self.bob])
        self.tcall(self.bob, "contacts", "add", "alice", address[self.alice])
        self.tcall(self.bob, "settings", "set", "answer_with_camera", "on")
        self.listen = subprocess.Popen(
            [TCALL, "listen", "--auto-answer", *MEDIA, "--json"],
            env=_env(self.bob),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.listen.stdout is not None
        while '"online"' not in self.listen.stdout.readline():
            pass
        # Its events go on (a stats line a second per call): read them, or once the pipe is full
        # the listener blocks writing one and stops answering (from the third run on).
        threading.Thread(target=self.listen.stdout.read, daemon=True).start()

    @staticmethod
    def tcall(home: Path, *args: str) -> str:
        done = subprocess.run(
            [TCALL, *args], env=_env(home), capture_output=True, text=True, check=True
        )
        return done.stdout

    def stop(self) -> None:
        for process in (self.listen, self.serve):
            process.terminate()
            process.wait(10)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    peer = "echo" if "--echo" in sys.argv else "bob"
    args = [a for a in sys.argv[1:] if a != "--echo"]
    runs = int(args[0]) if len(args) > 0 else 3
    seconds = float(args[1]) if len(args) > 1 else 8.0
    cols, rows = (int(v) for v in (args[2] if len(args) > 2 else "160x48").split("x"))
    what = "echo call" if peer == "echo" else "1:1 relay call (alice measured, bob listening)"
    print(f"{what}, 640x480@30 VP8 both ways; app at {cols}x{rows} in tmux; {seconds:g} s each")
    print("CPU % of one core for the whole process; app / headless in the same run")
    tmp = Path(tempfile.mkdtemp())
    pair = None if peer == "echo" else RelayPair(tmp)
    home = tmp / "echo" if pair is None else pair.alice
    try:
        for run in range(runs):
            load = os.getloadavg()[0]
            base = one("headless", peer, home, seconds, cols, rows)
            print(f"run {run + 1} (load {load:.1f})")
            print(
                f"  {'headless':10} CPU {base['cpu']:5.1f}%  decoded {base['fps']:5.1f} fps",
                flush=True,
            )
            for kind in ("app-before", "app", "app+stats"):
                r = one(kind, peer, home, seconds, cols, rows)
                print(
                    f"  {kind:10} CPU {r['cpu']:5.1f}% ({r['cpu'] / base['cpu']:.2f}x headless,"
                    f" +{r['cpu'] - base['cpu']:.1f})  shown {r['fps']:5.1f} fps"
                    f" (published {r['published']:5.1f})  lag p50 {r['lag50']:.2f} ms"
                    f" p99 {r['lag99']:.2f} ms"
                )
    finally:
        if pair is not None:
            pair.stop()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--headless"]:
        asyncio.run(headless(sys.argv[2], float(sys.argv[3]), Path(sys.argv[4])))
    elif sys.argv[1:2] in (["--app"], ["--app+stats"], ["--app-before"]):
        stats, before = sys.argv[1] == "--app+stats", sys.argv[1] == "--app-before"
        app(sys.argv[2], float(sys.argv[3]), Path(sys.argv[4]), stats, before)
    else:
        main()
