"""The app over a thin link: how long a key takes to show, while the video plays (issue #16).

The real `tcall` app runs its echo call (640x480@30 test pattern and a tone, VP8/Opus on loopback,
shown at 160x48 in truecolor half-blocks: the remote picture and the self-view) in a pty whose far
end is read at a fixed byte rate, as a slow SSH session delivers it (tests/support/slow_pty.py).
At each rate it presses `m` (mute) and times how long until "muted" has crossed the link, then `s`
(stats box) until its "bitrate" line has, and counts the direct video frames that crossed meanwhile
and the link's use. Three ways in the same run:

- video: the app as it is (frames paced by the terminal's answers, each cut to 50 ms of the link);
- video, unpaced: the frame path as it was (a frame in flight until Textual's writer thread has
  written it, however big; `VideoView._pace` patched to None in the app's process);
- audio only: the same call without video, the baseline (what the keys cost with nothing else on
  the link).

The links: unthrottled, 1 Mbit/s and 256 kbit/s with only the kernel's pty buffer (about 18 KB)
between the app and the link, and 256 kbit/s behind 256 KB of buffers, as over SSH, where sshd
reads the pty at once into its channel window (2 MB in OpenSSH) and TCP's send buffer: there the
app's writes never block, however slow the link. One row adds a 50 ms round trip (the terminal's
answers come back that much later; a key's time leaves it out).

Run: `python bench/slow_link.py [PRESSES]` (default 5 presses of each key per row).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from tests.support.slow_pty import MUTED, STATS, echo_call, toggle_latency

UNPACED = (
    sys.executable,
    "-c",
    "from tcall.tui.widgets.video_view import VideoView\n"
    "VideoView._pace = staticmethod(lambda driver, loop: None)\n"
    "from tcall.tui.cli import main\n"
    "raise SystemExit(main([]))\n",
)
WAYS = {"video": (True, None), "video, unpaced": (True, UNPACED), "audio only": (False, None)}
LINKS = [  # name, bytes a second (None: unthrottled), bytes the link's buffers hold, round trip
    ("unthrottled", None, 0, 0.0),
    ("1 Mbit/s", 125_000, 0, 0.0),
    ("1 Mbit/s, 50 ms round trip", 125_000, 0, 0.05),
    ("256 kbit/s", 32_000, 0, 0.0),
    ("256 kbit/s, SSH-like (256 KB buffered)", 32_000, 256 * 1024, 0.0),
]


def measure(
    rate: float | None,
    buffer: int,
    round_trip: float,
    video: bool,
    argv: tuple[str, ...] | None,
    presses: int,
) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder) / "home"
        kwargs = {} if argv is None else {"argv": argv}
        with echo_call(
            home, rate, video=video, buffer=buffer, round_trip=round_trip, **kwargs
        ) as terminal:
            start, began = terminal.received, time.monotonic()
            mute = [toggle_latency(terminal, b"m", MUTED, timeout=90) for _ in range(presses)]
            time.sleep(1.0)  # the mute's last repaint crosses before the stats key is timed
            stats = [toggle_latency(terminal, b"s", STATS, timeout=90) for _ in range(presses)]
            took = time.monotonic() - began
            return {
                "mute": mute,
                "stats": stats,
                "fps": terminal.frames(start) / took,
                "link": (terminal.received - start) / took,
            }


def ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:.0f} (max {max(values) * 1000:.0f})"


def main() -> None:
    presses = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    print(f"{presses} presses of each key per row; 160x48 cells")
    print("| link | app | `m` to screen, ms: median (max) | `s` to screen, ms | frames/s | KB/s |")
    print("|---|---|---|---|---|---|")
    for name, rate, buffer, round_trip in LINKS:
        base = None
        for way, (video, argv) in reversed(WAYS.items()):  # the baseline first
            r = measure(rate, buffer, round_trip, video, argv, presses)
            base = base or statistics.median(r["mute"])
            ratio = statistics.median(r["mute"]) / base
            print(
                f"| {name} | {way} | {ms(r['mute'])}, {ratio:.1f}x audio only | {ms(r['stats'])}"
                f" | {r['fps']:.1f} | {r['link'] / 1000:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
