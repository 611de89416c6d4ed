"""Render benchmark: encode speed per mode, against chafa and rich-pixels, delta bytes, quality, CPU.

Run: `python bench/render.py` (needs the `bench` extra, chafa and tmux). Prints one table per part,
then the ratios the issue asks for.
"""

from __future__ import annotations

import asyncio
import io
import os
import re
import resource
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

from engine.media.video import open_video_source
from tui.render import make_encoder
from tui.render.delta import TextScreen
from tui.render.fit import letterbox
from tui.render.halfblock import HalfBlockEncoder
from tui.render.palette256 import Palette256Encoder
from tui.render.sixel import PALETTE_HEADER, quantise, sixel_body
from tui.render.textmode import TextEncoder

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


def tmux_cpu(cols: int, rows: int, frames: int) -> tuple[float, float]:
    """CPU use and frame rate of `tcall view pattern` inside a cols x rows tmux pane."""
    sock = f"bench-{uuid.uuid4().hex[:8]}"
    done = Path(tempfile.mkdtemp()) / "done"
    tcall = Path(sys.executable).parent / "tcall"
    runner = (
        "import resource,subprocess,sys,time;t=time.monotonic();"
        f"subprocess.run(['{tcall}','view','pattern','--frames','{frames}']);"
        "r=resource.getrusage(resource.RUSAGE_CHILDREN);"
        f"open('{done}','w').write(f'{{r.ru_utime+r.ru_stime}} {{time.monotonic()-t}}')"
    )
    subprocess.run(
        ["tmux", "-L", sock, "new-session", "-d", "-x", str(cols), "-y", str(rows),
         "-e", "COLORTERM=truecolor", sys.executable, "-c", runner],
        check=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + frames + 60
        while not done.exists() and time.monotonic() < deadline:
            time.sleep(0.5)
        cpu, wall = map(float, done.read_text().split())
    finally:
        subprocess.run(["tmux", "-L", sock, "kill-server"], check=False)
    return cpu / wall * 100, frames / wall


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

    print("\n## Against rich-pixels 3.0 (half-blocks, rendered to a string)")
    for cols, rows in SIZES:
        small = Image.fromarray(letterbox(frame, cols, rows * 2))

        def rich_pixels(small: Image.Image = small, cols: int = cols) -> str:
            console = Console(file=io.StringIO(), color_system="truecolor", width=cols + 1)
            console.print(Pixels.from_image(small))
            return console.file.getvalue()  # type: ignore[attr-defined]

        t_rich = ms(rich_pixels, 3)
        ours = times[("halfblock", cols)]
        ratios[f"rich-pixels {cols}x{rows}"] = t_rich / ours
        print(f"{cols}x{rows}: tcall {ours:.1f} ms, rich-pixels {t_rich:.1f} ms")

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

    print("\n## tcall view pattern in tmux at 240x80, 60 frames written")
    cpu, fps = tmux_cpu(240, 80, 60)
    print(f"CPU {cpu:.0f}% of one core, {fps:.1f} fps")
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(f"(benchmark process CPU {usage.ru_utime:.1f}s)")

    print("\n## Ratios (goal)")
    for key, value in ratios.items():
        goal = "50x" if "rich" in key else "3x" if "delta" in key else "1x"
        print(f"{key:28} {value:8.1f}x   (goal >= {goal})")
    print(f"{'tmux 240x80 CPU':28} {cpu:7.0f}%    (goal <= 30% at 30 fps; got {fps:.1f} fps)")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("COLORTERM", "truecolor")
    main()
