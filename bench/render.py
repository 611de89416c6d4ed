"""Render benchmark: encode speed per mode, against chafa and rich-pixels, delta bytes, quality, CPU.

Run: `python bench/render.py` (needs the `bench` extra, chafa and tmux). Prints one table per part,
then the ratios the issue asks for. `python bench/render.py --tmux [RUNS]` runs only the VideoView
in tmux part (direct frames, direct frames under a stats box and a self-view, and Textual's
compositor path), RUNS times each, with the load average. "Updates/s" counts the main view's
frames on the terminal: Textual's screen updates plus the frames written straight to it (an
earlier version counted the driver's writes, three per Textual update).
"""

from __future__ import annotations

import asyncio
import io
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pyte
from PIL import Image
from rich.console import Console
from rich_pixels import Pixels
from skimage.data import astronaut
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from textual.app import App, ComposeResult
from textual.widgets import Static

from tcall.engine.media.video import open_video_source
from tcall.tui.render import make_encoder
from tcall.tui.render.delta import TextScreen
from tcall.tui.render.fit import letterbox
from tcall.tui.render.halfblock import HalfBlockEncoder
from tcall.tui.render.palette256 import Palette256Encoder
from tcall.tui.render.sixel import PALETTE_HEADER, quantise, sixel_body
from tcall.tui.render.textmode import TextEncoder
from tcall.tui.widgets import VideoView

SIZES = [(120, 40), (240, 80)]
MODES = ["halfblock", "256", "ascii", "sixel", "kitty"]


def ms(fn: Callable[[], object], repeat: int = 7) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def photo() -> np.ndarray:
    return cv2.resize(astronaut(), (640, 480), interpolation=cv2.INTER_AREA)


def pattern_frames(n: int) -> list[np.ndarray]:
    async def grab() -> list[np.ndarray]:
        source = open_video_source("pattern", width=640, height=480, fps=1000)
        try:
            return [await source.next_frame() for _ in range(n)]
        finally:
            source.stop()

    return asyncio.run(grab())


def chafa_ms(args: list[str], png: Path, repeat: int = 5) -> tuple[float, bytes]:
    cmd = ["chafa", "--animate", "off", "--polite", "on", *args, str(png)]
    out = subprocess.run(cmd, capture_output=True, check=True).stdout
    return ms(lambda: subprocess.run(cmd, capture_output=True, check=True), repeat), out


def read_clip(path: Path) -> list[np.ndarray]:
    """Every frame of a video file, as RGB."""
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, bgr = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    capture.release()
    return frames


def rich_pixels(small: np.ndarray, cols: int) -> str:
    """rich-pixels' half-block rendering of a picture already at cell resolution, as a string."""
    console = Console(file=io.StringIO(), color_system="truecolor", width=cols + 1)
    console.print(Pixels.from_image(Image.fromarray(small)))
    return console.file.getvalue()  # type: ignore[attr-defined]


def paired_ms(
    first: Callable[[np.ndarray], object],
    second: Callable[[np.ndarray], object],
    frames: list[np.ndarray],
) -> tuple[float, float]:
    """Median times of two encoders over the frames, each frame encoded once by each, one right
    after the other (after one warm-up frame), so that the machine's drift hits both alike."""
    first(frames[0])
    second(frames[0])
    times: tuple[list[float], list[float]] = ([], [])
    for f in frames:
        for encode, spent in ((first, times[0]), (second, times[1])):
            t = time.perf_counter()
            encode(f)
            spent.append(time.perf_counter() - t)
    return statistics.median(times[0]) * 1000, statistics.median(times[1]) * 1000


def decode_cells(data: bytes, cols: int, rows: int) -> np.ndarray:
    """Half-block output back into a (2*rows) x cols picture, as a terminal would show it."""
    screen = pyte.Screen(cols, rows)
    pyte.ByteStream(screen).feed(data.replace(b"\n", b"\r\n"))
    img = np.zeros((rows * 2, cols, 3), dtype=np.uint8)

    def colour(name: str) -> list[int]:
        return [int(name[i : i + 2], 16) for i in (0, 2, 4)] if len(name) == 6 else [0, 0, 0]

    for y in range(rows):
        for x, cell in screen.buffer[y].items():
            top, bottom = colour(cell.fg), colour(cell.bg)
            if cell.data == "▄":
                top, bottom = bottom, top
            elif cell.data == " ":
                top = bottom
            elif cell.data == "█":
                bottom = top
            img[2 * y, x], img[2 * y + 1, x] = top, bottom
    return img


def quality(picture: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    return (
        peak_signal_noise_ratio(reference, picture, data_range=255),
        structural_similarity(reference, picture, channel_axis=2, data_range=255),
    )


def make_clip(path: Path, frame: np.ndarray, seconds: float = 5.0) -> None:
    """A VP8 clip of the photo with a head-sized piece moving over it (a still camera, a moving
    person), through the same lossy codec a call uses, so its still parts ripple as in a call."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"VP80"), 30, (640, 480))
    head = frame[40:240, 200:380].copy()
    for i in range(int(seconds * 30)):
        f = frame.copy()
        dx, dy = int(60 * np.sin(2 * np.pi * i / 75)), int(10 * np.sin(2 * np.pi * i / 37))
        f[40 + dy : 240 + dy, 200 + dx : 380 + dx] = head
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()


def in_tmux(argv: list[str], cols: int, rows: int, timeout: float) -> tuple[float, float, float]:
    """Run `argv` alone in a detached cols x rows tmux pane; its CPU seconds, wall seconds, and
    the tmux server's CPU seconds meanwhile."""
    sock = f"bench-{uuid.uuid4().hex[:8]}"
    done = Path(tempfile.mkdtemp()) / "done"
    runner = (
        "import resource,subprocess,sys,time;t=time.monotonic();"
        f"subprocess.run({argv!r});"
        "r=resource.getrusage(resource.RUSAGE_CHILDREN);"
        f"open('{done}','w').write(f'{{r.ru_utime+r.ru_stime}} {{time.monotonic()-t}}')"
    )
    tmux = ["tmux", "-L", sock]
    subprocess.run(
        [*tmux, "new-session", "-d", "-x", str(cols), "-y", str(rows),
         "-e", "COLORTERM=truecolor", sys.executable, "-c", runner],
        check=True,
    )  # fmt: skip
    pid = subprocess.run(
        [*tmux, "display", "-p", "#{pid}"], capture_output=True, text=True, check=True
    ).stdout.strip()

    def server_cpu() -> float:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    try:
        start = server_cpu()
        deadline = time.monotonic() + timeout
        while not done.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        tmux_cpu = server_cpu() - start
        cpu, wall = map(float, done.read_text().split())
    finally:
        subprocess.run([*tmux, "kill-server"], check=False, capture_output=True)
    return cpu, wall, tmux_cpu


def view_in_tmux(source: str, cols: int, rows: int, frames: int) -> dict[str, float]:
    """`tcall view SOURCE` in tmux: frames per second and CPU % of tcall and of tmux, with start-up
    and exit taken out (a one-frame run measures them)."""
    tcall = str(Path(sys.executable).parent / "tcall")
    argv = [tcall, "view", source, "--render", "halfblock", "--frames"]
    cpu1, wall1, tmux1 = in_tmux([*argv, "1"], cols, rows, 60)
    cpu, wall, tmux_cpu = in_tmux([*argv, str(frames)], cols, rows, frames + 60)
    span = wall - wall1
    return {
        "fps": (frames - 1) / span,
        "cpu": (cpu - cpu1) / span * 100,
        "tmux": (tmux_cpu - tmux1) / span * 100,
    }


class ViewBench(App[None]):
    """A Textual app that is nothing but a VideoView fed from a source at 30 fps; with `overlays`,
    the call screen's furniture over it too: a stats box and a self-view fed the same frames."""

    CSS = """
    Screen { layers: base overlay; }
    #pip { layer: overlay; dock: right; width: 26; height: 8; margin: 1 1 0 0; }
    #stats { layer: overlay; dock: left; width: 44; height: 8; margin: 1 0 0 1;
             border: round $accent; }
    """

    def __init__(self, source: str, seconds: float, result: Path, direct: bool, overlays: bool):
        super().__init__()
        self.source, self.seconds, self.result = source, seconds, result
        self.direct, self.overlays = direct, overlays
        self.displays = 0  # screen updates Textual wrote

    def compose(self) -> ComposeResult:
        yield VideoView("halfblock", direct=self.direct, id="main")
        if self.overlays:
            yield Static("fps 30 in / 30 out", id="stats")
            yield VideoView("halfblock", direct=self.direct, id="pip")

    def post_display_hook(self) -> None:
        self.displays += 1

    async def on_mount(self) -> None:
        self.run_worker(self.feed(), exit_on_error=True)

    async def feed(self) -> None:
        views = list(self.query(VideoView))
        source = open_video_source(self.source, width=640, height=480, fps=30)
        driver = self._driver
        assert driver is not None
        written = [0]
        original = driver.write

        def counting(data: str) -> None:
            written[0] += len(data)
            original(data)

        driver.write = counting  # type: ignore[method-assign]

        def direct_frames() -> int:
            # The main view's: with overlays, the self-view writes its own frames as well.
            return views[0].writer.written if views[0].writer is not None else 0

        try:
            for _ in range(30):  # warm up
                frame = await source.next_frame()
                for view in views:
                    view.show_frame(frame)
            written[0], self.displays, before = 0, 0, direct_frames()
            cpu, wall = time.process_time(), time.monotonic()
            shown = 0
            while time.monotonic() - wall < self.seconds:
                frame = await source.next_frame()
                for view in views:
                    view.show_frame(frame)
                shown += 1
                if self.overlays and shown % 30 == 0:
                    self.query_one("#stats", Static).update(f"fps 30 in / 30 out\nframe {shown}")
                # A source that is behind returns at once; let Textual paint in between.
                await asyncio.sleep(0)
            cpu, wall = time.process_time() - cpu, time.monotonic() - wall
            updates = self.displays + direct_frames() - before
        finally:
            source.stop()
        self.result.write_text(
            f"{shown / wall} {updates / wall} {cpu / wall * 100} {written[0] / wall}"
        )
        self.exit()


def videoview_in_tmux(
    source: str, cols: int, rows: int, seconds: float, direct: bool = True, overlays: bool = False
) -> dict[str, float]:
    """The VideoView app in tmux: frames fed and screen updates (Textual's and direct frames) per
    second, the app's CPU %, bytes/s written, and tmux's CPU %."""
    result = Path(tempfile.mkdtemp()) / "result"
    argv = [sys.executable, __file__, "--videoview", source, str(seconds), str(result)]
    argv += ["direct" if direct else "compositor", "overlays" if overlays else "plain"]
    _, _, tmux_cpu = in_tmux(argv, cols, rows, seconds + 60)
    fed, updates, cpu, rate = map(float, result.read_text().split())
    return {
        "fed": fed,
        "updates": updates,
        "cpu": cpu,
        "bytes": rate,
        "tmux": tmux_cpu / seconds * 100,
    }


def tmux_videoview(runs: int) -> None:
    """Only the VideoView-in-tmux figures, `runs` times each, with the load average."""
    clip_path = Path(tempfile.mkdtemp()) / "clip.webm"
    make_clip(clip_path, photo())
    print("## VideoView in a detached 240x80 tmux (2-core machine; CPU % of one core)")
    for direct, overlays in ((True, False), (True, True), (False, False)):
        path = "direct" if direct else "compositor"
        for source in ("pattern", f"file:{clip_path}"):
            name = source.split(":")[0]
            for _ in range(runs):
                load = os.getloadavg()[0]
                t = videoview_in_tmux(source, 240, 80, 10, direct, overlays)
                print(
                    f"{path:10} {'+overlays' if overlays else '':9} {name:8}: {t['fed']:5.1f}"
                    f" fed/s, {t['updates']:5.1f} updates/s, app {t['cpu']:3.0f}% CPU,"
                    f" tmux {t['tmux']:3.0f}%, {t['bytes'] / 1e6:.1f} MB/s  (load {load:.1f})",
                    flush=True,
                )
    shutil.rmtree(clip_path.parent, ignore_errors=True)


def main() -> None:
    frame = photo()
    tmp = Path(tempfile.mkdtemp())
    png = tmp / "astronaut.png"
    Image.fromarray(frame).save(png)
    patterns = pattern_frames(30)

    print("## Encode time, ms per 640x480 frame (median)")
    print(
        f"{'mode':10}"
        + "".join(f"{f'{c}x{r} photo':>16}{f'{c}x{r} pattern':>18}" for c, r in SIZES)
    )
    times: dict[tuple[str, int], float] = {}
    for mode in MODES:
        enc = make_encoder(mode)
        row = f"{mode:10}"
        for cols, rows in SIZES:
            t_photo = ms(lambda enc=enc, c=cols, r=rows: enc.encode(frame, c, r), 5)
            t_pat = ms(lambda enc=enc, c=cols, r=rows: enc.encode(patterns[3], c, r), 5)
            times[(mode, cols)] = t_photo
            row += f"{t_photo:16.1f}{t_pat:18.1f}"
        print(row)

    print("\n## Against chafa 1.12 (same output size; chafa time includes its process start-up)")
    startup, _ = chafa_ms(["-f", "symbols", "-s", "1x1"], png)
    print(f"chafa start-up alone (1x1 output): {startup:.1f} ms")
    ratios = {}
    for cols, rows in SIZES:
        t_chafa, out = chafa_ms(
            ["-f", "symbols", "--symbols", "vhalf", "-c", "full", "-s", f"{cols}x{rows}",
             "--font-ratio", "1/2"],
            png,
        )  # fmt: skip
        ours = times[("halfblock", cols)]
        ratios[f"halfblock {cols}x{rows}"] = (t_chafa - startup) / ours
        print(
            f"half-block {cols}x{rows}: tcall {ours:.1f} ms, chafa {t_chafa:.1f} ms "
            f"({t_chafa - startup:.1f} without start-up), chafa bytes {len(out)}"
        )
    for cols, rows in SIZES:
        t_chafa, out = chafa_ms(["-f", "sixels", "-s", f"{cols}x{rows}"], png)
        m = re.search(rb'"1;1;(\d+);(\d+)', out)
        assert m, "chafa wrote no sixel raster attributes"
        w, h = int(m.group(1)), int(m.group(2)) // 6 * 6
        ours = ms(lambda w=w, h=h: PALETTE_HEADER + sixel_body(quantise(letterbox(frame, w, h))), 5)
        ratios[f"sixel {w}x{h}px"] = (t_chafa - startup) / ours
        print(
            f"sixel {w}x{h} px: tcall {ours:.1f} ms, chafa {t_chafa:.1f} ms "
            f"({t_chafa - startup:.1f} without start-up)"
        )

    clip_path = tmp / "clip.webm"
    make_clip(clip_path, frame)
    clip_frames = read_clip(clip_path)
    print(
        "\n## Against rich-pixels 3.0 (half-blocks to a string, both from the same cell-sized"
        " pictures; median ms per frame)"
    )
    # rich-pixels builds a Rich Style per cell, and Rich caches parsed styles: a still shown again
    # and again is its best case, video (every frame new colours) its usual one.
    for cols, rows in SIZES:
        sources = {
            "photo, one still": [frame] * 9,
            "camera-like clip": clip_frames[:: len(clip_frames) // 10][:10],
            "pattern": patterns[:10],
        }
        for name, frames in sources.items():
            smalls = [letterbox(f, cols, rows * 2) for f in frames]
            t_rich, ours = paired_ms(
                lambda small, c=cols: rich_pixels(small, c),
                lambda small, c=cols, r=rows: HalfBlockEncoder().encode(small, c, r),
                smalls,
            )
            ratios[f"rich-pixels {cols}x{rows} {name.split(',')[0]}"] = t_rich / ours
            print(f"{cols}x{rows} {name:17}: tcall {ours:5.2f} ms, rich-pixels {t_rich:7.1f} ms")

    print("\n## Bytes per frame, 30 frames: photo background, a moving 80x80 square")
    clip = []
    for i in range(30):
        f = frame.copy()
        f[200:280, 40 + 15 * i : 120 + 15 * i] = [255, 230, 0]
        clip.append(f)
    enc_hb: TextEncoder = HalfBlockEncoder()
    for cols, rows in SIZES:
        screen = TextScreen()
        full = sum(len(enc_hb.encode(f, cols, rows)) for f in clip) / len(clip)
        delta = sum(len(screen.update(enc_hb.grid(f, cols, rows))) for f in clip[1:]) / 29
        ratios[f"delta bytes {cols}x{rows}"] = full / delta
        print(f"{cols}x{rows}: whole frames {full:,.0f} B, with deltas {delta:,.0f} B")

    print("\n## Quality against the source downscaled to the same cells (PSNR dB / SSIM)")
    for cols, rows in SIZES:
        reference = letterbox(frame, cols, rows * 2)
        for name, enc in (("halfblock", HalfBlockEncoder()), ("256", Palette256Encoder())):
            decoded = decode_cells(enc.encode(frame, cols, rows), cols, rows)
            p, s = quality(decoded, reference)
            print(f"{cols}x{rows} tcall {name:9}: PSNR {p:6.2f}  SSIM {s:.3f}")
        _, out = chafa_ms(
            ["-f", "symbols", "--symbols", "vhalf", "-c", "full", "-s", f"{cols}x{rows}",
             "--font-ratio", "1/2"],
            png,
            1,
        )  # fmt: skip
        decoded = decode_cells(out, cols, rows + 1)[: rows * 2]
        # chafa sizes the picture itself; compare on the rows it filled.
        used = decoded.any(axis=2)
        h = int(np.flatnonzero(used.any(axis=1)).max()) + 1
        w = int(np.flatnonzero(used.any(axis=0)).max()) + 1
        ref = cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA)
        p, s = quality(decoded[:h, :w], ref)
        print(f"{cols}x{rows} chafa vhalf   : PSNR {p:6.2f}  SSIM {s:.3f}")

    print("\n## In a detached 240x80 tmux (2-core machine; CPU % of one core)")
    runs = {}
    for source in ("pattern", f"file:{clip_path}"):
        name = source.split(":")[0]
        v = runs[name] = view_in_tmux(source, 240, 80, 300)
        print(
            f"tcall view {name:8}: {v['fps']:5.1f} fps, tcall {v['cpu']:3.0f}% CPU,"
            f" tmux {v['tmux']:3.0f}%"
        )
    for source in ("pattern", f"file:{clip_path}"):
        name = source.split(":")[0]
        t = videoview_in_tmux(source, 240, 80, 10)
        print(
            f"VideoView {name:8}: {t['fed']:5.1f} frames fed/s, {t['updates']:5.1f} screen"
            f" updates/s, app {t['cpu']:3.0f}% CPU, tmux {t['tmux']:3.0f}%,"
            f" {t['bytes'] / 1e6:.1f} MB/s"
        )
        runs[f"VideoView {name}"] = {"fps": t["updates"], "cpu": t["cpu"]}

    print("\n## Ratios (goal)")
    for key, value in ratios.items():
        goal = "50x" if "rich" in key else "3x" if "delta" in key else "1x"
        print(f"{key:28} {value:8.1f}x   (goal >= {goal})")
    for name, v in runs.items():
        print(
            f"{'tmux 240x80 ' + name:28} {v['fps']:5.1f} fps at {v['cpu']:3.0f}% CPU"
            "   (goal 30 fps at <= 30%)"
        )
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("COLORTERM", "truecolor")
    if sys.argv[1:2] == ["--videoview"]:
        source, seconds, result, path, extras = sys.argv[2:7]
        ViewBench(
            source, float(seconds), Path(result), path == "direct", extras == "overlays"
        ).run()
    elif sys.argv[1:2] == ["--tmux"]:
        tmux_videoview(int(sys.argv[2]) if len(sys.argv) > 2 else 3)
    else:
        main()
