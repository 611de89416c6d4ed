"""A long call, watched for leaks (issue #16): RSS and open file descriptors over the call.

One `tcall call echo --duration S --json` (640x480@30 pattern video and a sine, VP8, both ends of the
echo in the one process, loopback ICE); every STEP seconds the process's resident memory and open
file descriptors are read from /proc. Printed: each sample, then the last minute against the second
(the first minute holds the warm-up: codec tables, the jitter buffers filling, imports), with the
goal beside it: flat within 10%. The stats events say whether media kept flowing all along.

    python bench/soak.py [SECONDS]     (default 600: the issue's 10 minutes)
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

TCALL = str(Path(sys.executable).with_name("tcall"))
STEP = 10.0  # s between samples
LIMIT = 1.10  # the goal: the last minute within 10% of the second


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 600.0
    home = tempfile.mkdtemp(prefix="soak-")
    env = {**os.environ, "TCALL_HOME": home, "TCALL_ICE_ADDRESSES": "127.0.0.1"}
    command = [TCALL, "call", "echo", "--video", "pattern", "--audio", "sine"]
    command += ["--duration", str(seconds), "--json"]
    call = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
    assert call.stdout is not None
    fps: list[float] = []
    outcome: dict[str, str] = {}

    def read_events() -> None:
        assert call.stdout is not None
        for line in call.stdout:
            event = json.loads(line)
            if event.get("event") == "stats":
                fps.append(float(event.get("fps_received") or 0))
            elif event.get("event") == "summary":
                outcome["outcome"] = event.get("outcome", "")

    reader = threading.Thread(target=read_events, daemon=True)
    reader.start()
    print(f"echo call, 640x480@30 VP8 and a sine, {seconds:g} s; a sample every {STEP:g} s")
    print(f"{'t (s)':>6} {'RSS (MB)':>9} {'fds':>5} {'fps received':>13}")
    samples: list[tuple[float, int, int]] = []
    started = time.monotonic()
    while call.poll() is None:
        time.sleep(STEP)
        if call.poll() is not None:
            break  # ended: a zombie has neither memory nor descriptors to count
        try:
            sample = (time.monotonic() - started, rss_kb(call.pid), open_fds(call.pid))
        except (FileNotFoundError, ProcessLookupError):
            break  # it ended between the poll and the read
        samples.append(sample)
        recent = statistics.mean(fps[-10:]) if fps else 0.0
        print(f"{sample[0]:6.0f} {sample[1] / 1024:9.1f} {sample[2]:5d} {recent:13.1f}", flush=True)
    call.wait()
    reader.join(5)
    per_minute = max(1, round(60 / STEP))
    second = samples[per_minute : 2 * per_minute]
    last = samples[-per_minute:]
    if len(samples) < 3 * per_minute:
        raise SystemExit("too short to compare minutes: run at least 180 s")
    rss = statistics.mean(s[1] for s in last) / statistics.mean(s[1] for s in second)
    fds = statistics.mean(s[2] for s in last) / statistics.mean(s[2] for s in second)
    still = sum(f > 25 for f in fps) / max(1, len(fps))
    print(f"\noutcome {outcome.get('outcome', '?')} (exit {call.returncode})")
    print("| figure (last minute / second minute) | tcall | goal |\n|---|---|---|")
    print(f"| RSS | {rss:.3f} | <= {LIMIT:.2f} |")
    print(f"| open file descriptors | {fds:.3f} | <= {LIMIT:.2f} |")
    print(f"| seconds with more than 25 fps received | {100 * still:.0f}% | |")


if __name__ == "__main__":
    main()
