"""Calls through real networks (issue #16): tcall beside bare aiortc in one run, a table of figures
and their goals.

Each figure comes from one module, which measures tcall and its baseline side by side:

- bench/network_cuts.py: time to `reconnecting` after a cut, media back after a 5 s cut and after
  an address change, audio PESQ-WB outside a 5 s cut;
- bench/network_thin.py: keyframes at a steady link, a call through a 300 kbit/s cap;
- bench/network_loss.py: video fps and the longest freeze at 5% random loss.

Each module's `rows(args)` returns a list of Row. Namespaces need root:

    sudo .venv/bin/python bench/network.py [--only loss,thin] [--runs 2] [--codecs vp8,h264]
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODULES = {"cuts": "bench.network_cuts", "thin": "bench.network_thin", "loss": "bench.network_loss"}


@dataclass(frozen=True)
class Row:
    figure: str
    goal: str
    tcall: str
    baseline: str  # bare aiortc, in the same run
    note: str = ""


def table(rows: list[Row]) -> str:
    lines = ["| figure | goal | tcall | bare aiortc | note |", "|---|---|---|---|---|"]
    lines += [f"| {r.figure} | {r.goal} | {r.tcall} | {r.baseline} | {r.note} |" for r in rows]
    return "\n".join(lines)


def machine() -> str:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{os.cpu_count()} CPUs, load average {load}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(MODULES), help="cuts,thin,loss")
    parser.add_argument("--runs", type=int, default=2, help="calls per figure and stack")
    parser.add_argument("--codecs", default="vp8,h264")
    args = parser.parse_args(argv)
    print(f"before: {machine()}", flush=True)
    rows: list[Row] = []
    for name in args.only.split(","):
        started = time.monotonic()
        try:
            got = importlib.import_module(MODULES[name]).rows(args)
        except Exception as exc:  # one module's failure still prints the others' figures
            traceback.print_exc()
            got = [Row(figure=f"({name})", goal="", tcall=f"failed: {exc}", baseline="")]
        rows += got
        print(f"{name}: {len(got)} rows in {time.monotonic() - started:.0f} s", flush=True)
    print(f"after: {machine()}\n")
    print(table(rows))


if __name__ == "__main__":
    main()
