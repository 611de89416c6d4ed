"""Group calls (issue #17): tcall's mesh beside a bare aiortc mesh in one run, a table with ratios.

tcall: real `tcall` processes, one per member, through a `tcall serve` relay on 127.0.0.1, all
contacts of each other: alice calls (`tcall call bob carol ... --json`), the others answer
(`tcall listen --auto-answer --once --json`), every one sending the pattern at 320x240@15 and a
sine (`--camera on`). The baseline is bench/group_bare.py's bare aiortc mesh: a process per member,
the same pattern and sine, aiortc's VP8 encoder once per peer connection. Loopback only, no STUN.

- encodes per captured frame, 6 members: tcall's `video_encodes / frames_sent` from each member's
  summary (the whole call); the mesh's `Vp8Encoder.encode` calls per captured frame in the window;
- join, 4 members: the caller's dial to the first frame from every other member, as the caller
  sees it: the largest `setup_ms` in its summary (each pair dials when the call is placed, so each
  `setup_ms` runs from the dial); the mesh's member 0 from `go` (its peer connections made, offers
  sent) to its last first frame; median (min-max) of --runs runs, each with fresh processes;
- CPU per process, 4 members: utime+stime from /proc/PID/stat over a window of --seconds that
  starts --warmup s after every member received from every other, as % of one core. tcall's alice
  is the real app, `tcall` in a 160x48 tmux (render halfblock, camera pattern, microphone sine; the
  group started by keys: g, space on each contact, enter) showing the 2x2 grid; bob, carol and dave
  are headless. The mesh renders nothing. tmux's own CPU is not counted;
- fps received from each member, 6 members: per receiving member and sender, tcall's per-second
  `stats` fps_received averaged over the window, the mesh's decoded frames over the window; the
  min and median of all 30 pairs. CPU per process is shown for 6 members too (no goal).

    python bench/group.py [--runs 3] [--seconds 10] [--warmup 3] [--only join,cpu,six]

The machine has 2 cores and is shared: the load average is printed before and after each part.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bare_peers import BarePeer  # noqa: E402
from bench.group_bare import BareMesh, bare_mesh  # noqa: E402
from bench.network import Row, machine, table  # noqa: E402
from tests.support.cli import TCALL  # noqa: E402
from tests.support.relays import ServeProcess  # noqa: E402
from tests.support.tmux import Tmux, tmux_server  # noqa: E402
from tests.support.users import MEDIA, User  # noqa: E402

NAMES = ("alice", "bob", "carol", "dave", "erin", "frank")
SMALL = ["--resolution", "320x240", "--fps", "15", "--camera", "on"]
ANSWER = ["listen", "--auto-answer", "--once", *SMALL]
COLS, ROWS = 160, 48
JOIN_CALL_S = 3.0  # how long each join run's call lasts once someone joined
TIMEOUT_S = 40.0


# --- measuring -----------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, every thread, in seconds (/proc/PID/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_window(pids: list[int], seconds: float) -> tuple[float, float, list[float]]:
    """Each process's CPU over the next `seconds`, as % of one core; the window's start and end."""
    before, start = [cpu_seconds(pid) for pid in pids], time.monotonic()
    time.sleep(seconds)
    after, end = [cpu_seconds(pid) for pid in pids], time.monotonic()
    return start, end, [(b - a) / (end - start) * 100 for a, b in zip(before, after, strict=True)]


def spread(values: list[float], digits: int = 0) -> str:
    """`median (min-max)`."""
    low, mid, high = min(values), statistics.median(values), max(values)
    return f"{mid:.{digits}f} ({low:.{digits}f}-{high:.{digits}f})"


def ratio(ours: float, theirs: float) -> str:
    return f"{ours / theirs:.2f}x" if theirs else "-"


def load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


# --- tcall ---------------------------------------------------------------------------------------


class Member(BarePeer):
    """A `tcall call|listen --json` process; `lines` holds its events, each stamped with the
    monotonic time it was read (tcall prints each event as it happens)."""

    def __init__(self, user: User, *args: str) -> None:  # its own command line, BarePeer's waits
        self.user = user
        self.process = subprocess.Popen(
            [TCALL, *args, *MEDIA, "--json"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=user.env,
        )
        self.lines: list[dict[str, Any]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with contextlib.suppress(ValueError):
                self.lines.append({**json.loads(line), "at": time.monotonic()})

    def events(self, kind: str) -> list[dict[str, Any]]:
        return [line for line in list(self.lines) if line.get("event") == kind]

    def joined(self) -> set[str]:
        return {line["member"] for line in self.events("joined")}

    def summary(self, timeout: float = 30) -> dict[str, Any]:
        return self.wait_for("event", "summary", timeout=timeout)


class Group:
    """A relay and six people, each a contact of every other; alice's home is also set up for the
    app (pattern camera, sine microphone, half-block rendering)."""

    def __init__(self, tmp: Path) -> None:
        self.relay = ServeProcess()
        self.users = [User(name, tmp / name, self.relay.url) for name in NAMES]
        for user in self.users:
            user.set("answer_with_camera", "on")
            for other in self.users:
                if other is not user:
                    user.add(other)
        for key, value in (("camera", "pattern"), ("microphone", "sine"), ("render", "halfblock")):
            self.users[0].set(key, value)

    def listeners(self, count: int, *args: str) -> list[Member]:
        """bob, carol ... answering, `count` of them, each online."""
        members = [Member(user, *ANSWER, *args) for user in self.users[1 : count + 1]]
        for member in members:
            member.wait_for("state", "online", timeout=TIMEOUT_S)
        time.sleep(0.5)  # their start-up done, as the mesh's members are idle before `go`
        return members

    def stop(self) -> None:
        self.relay.stop()


def everyone_joined(members: list[Member], size: int, timeout: float = TIMEOUT_S) -> None:
    """Wait until each member has seen all the others join (media flows on every pair)."""
    deadline = time.monotonic() + timeout
    while any(len(m.joined()) < size - 1 for m in members):
        if time.monotonic() > deadline:
            seen = {m.user.name: sorted(m.joined()) for m in members}
            raise RuntimeError(f"tcall: not everyone joined within {timeout} s: {seen}")
        time.sleep(0.1)


def end(members: list[Member]) -> None:
    """SIGTERM to all at once (each hangs up and prints its summary), then wait for each."""
    for member in members:
        if member.process.poll() is None:
            member.process.terminate()
    for member in members:
        try:
            member.process.wait(20)
        except subprocess.TimeoutExpired:
            member.process.kill()
            member.process.wait()
    time.sleep(0.2)  # the reader threads take the last lines


def stats_fps(member: Member, start: float, end: float) -> dict[str, float]:
    """Per member heard, the mean of the fps_received in `member`'s stats read in the window."""
    seen: dict[str, list[float]] = {}
    for line in member.events("stats"):
        if start <= line["at"] <= end and "member" in line:
            seen.setdefault(line["member"], []).append(float(line.get("fps_received") or 0.0))
    return {name: statistics.fmean(values) for name, values in seen.items()}


def tcall_join(group: Group) -> float:
    listeners = group.listeners(3, "--duration", str(JOIN_CALL_S))
    caller = Member(group.users[0], "call", *NAMES[1:4], "--duration", str(JOIN_CALL_S))
    try:
        summary = caller.summary(timeout=TIMEOUT_S)
        setups = [m.get("setup_ms") for m in summary["members"]]
        if len(setups) != 3 or None in setups:
            raise RuntimeError(f"tcall: not every member's video came: {summary['members']}")
        return max(float(s) for s in setups)
    finally:
        end([caller, *listeners])


def bare_join() -> float:
    with bare_mesh(4) as mesh:
        time.sleep(0.5)
        mesh.go()
        mesh.first_frames(TIMEOUT_S)
        return max(BareMesh.firsts(mesh.members[0]).values())


def join_rows(args: argparse.Namespace) -> list[Row]:
    ours, theirs = [], []
    for run in range(args.runs):
        ours.append(tcall_join(args.group))
        theirs.append(bare_join())
        print(
            f"  join run {run + 1}: tcall {ours[-1]:.0f} ms, bare {theirs[-1]:.0f} ms", flush=True
        )
    mid = statistics.median(ours) / statistics.median(theirs)
    return [
        Row(
            "join, 4 members: dial to the first frame from every member, ms",
            "<= 1000",
            f"{spread(ours)}, {mid:.2f}x",
            spread(theirs),
            f"median (min-max) of {args.runs}; tcall: the caller's largest setup_ms (invitations "
            "through the relay, auto-answer); bare: offers straight to each member",
        )
    ]


@contextlib.contextmanager
def app_in_tmux(user: User) -> Iterator[tuple[Tmux, int]]:
    """The real app, `tcall`, as `user` in a COLSxROWS tmux; the server and the app's pid."""
    env = {k: user.env[k] for k in ("TCALL_HOME", "TCALL_ICE_ADDRESSES")}
    with tmux_server() as tmux:
        tmux.new_session(
            TCALL, size=(COLS, ROWS), name="app", env={**env, "COLORTERM": "truecolor"}
        )
        pid = int(tmux("display-message", "-p", "-t", "app", "#{pane_pid}").strip())
        assert TCALL in Path(f"/proc/{pid}/cmdline").read_text(), "the pane runs tcall itself"
        yield tmux, pid


def screen(tmux: Tmux) -> str:
    return tmux("capture-pane", "-p", "-t", "app")


def wait_screen(tmux: Tmux, done: Callable[[str], bool], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not done(screen(tmux)):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the app: no {what} within {TIMEOUT_S} s:\n{screen(tmux)}")
        time.sleep(0.2)


def tcall_cpu(args: argparse.Namespace) -> tuple[float, list[float], int]:
    """The app's CPU %, the headless members' and the rows of the app's screen showing video."""
    group: Group = args.group
    listeners = group.listeners(3)
    try:
        with app_in_tmux(group.users[0]) as (tmux, pid):
            online = [f"● {name}" for name in NAMES[1:4]]
            wait_screen(tmux, lambda text: all(o in text for o in online), "contacts online")
            tmux("send-keys", "-t", "app", "g")
            wait_screen(tmux, lambda text: "Call together" in text, "group picker")
            for key in ("Space", "Down", "Space", "Down", "Space", "Enter"):
                tmux("send-keys", "-t", "app", key)
                time.sleep(0.3)  # one at a time, as a person types
            everyone_joined(listeners, 4)
            time.sleep(args.warmup)
            _, _, cpu = cpu_window([pid, *(m.process.pid for m in listeners)], args.seconds)
            video = sum(row.count("▀") > 20 for row in screen(tmux).splitlines())
    finally:
        end(listeners)
    return cpu[0], cpu[1:], video


def bare_window(
    size: int, args: argparse.Namespace
) -> tuple[list[float], list[float], list[float]]:
    """A bare mesh of `size` connected, then per process CPU %, per pair fps and per member
    encodes per captured frame over the window."""
    with bare_mesh(size) as mesh:
        mesh.go()
        mesh.first_frames(TIMEOUT_S)
        time.sleep(args.warmup)
        start, stop, cpu = cpu_window(mesh.pids(), args.seconds)
        time.sleep(1.2)  # the once-a-second counts just after the window
        fps, encodes = mesh.window(start, stop)
    return cpu, fps, encodes


def cpu_rows(args: argparse.Namespace) -> list[Row]:
    app, headless, video_rows = tcall_cpu(args)
    bare, _, _ = bare_window(4, args)
    mid = statistics.median(bare)
    print(f"  cpu: app {app:.0f}%, headless {headless}, bare {bare}", flush=True)
    return [
        Row(
            f"CPU per process, 4 members: the app rendering the grid at {COLS}x{ROWS}, % of a core",
            "<= 60",
            f"{app:.0f}, {ratio(app, mid)}",
            f"{spread(bare)} (renders nothing)",
            f"alice, the real `tcall` in tmux, the caller; {video_rows} of {ROWS} rows showed "
            f"video; {args.seconds:g} s window",
        ),
        Row(
            "CPU per process, 4 members: headless, % of a core",
            "<= 60",
            f"{spread(headless)}, {ratio(statistics.median(headless), mid)}",
            spread(bare),
            "tcall: bob, carol, dave (`tcall listen`); bare: all four",
        ),
    ]


def tcall_six(args: argparse.Namespace) -> tuple[list[float], list[float], list[float]]:
    """Six members connected: per process CPU %, per pair fps (window), encodes per frame (summary)."""
    group: Group = args.group
    listeners = group.listeners(5)
    caller = Member(group.users[0], "call", *NAMES[1:6], *SMALL)
    members = [caller, *listeners]
    try:
        everyone_joined(members, 6)
        time.sleep(args.warmup)
        start, stop, cpu = cpu_window([m.process.pid for m in members], args.seconds)
    finally:
        end(members)
    fps: list[float] = []
    encodes = []
    for member in members:
        heard = stats_fps(member, start, stop)
        fps += [heard.get(name, 0.0) for name in NAMES if name != member.user.name]
        summary = member.summary(timeout=5)
        encodes.append(summary["video_encodes"] / max(1, summary["frames_sent"]))
    return cpu, fps, encodes


def six_rows(args: argparse.Namespace) -> list[Row]:
    cpu, fps, encodes = tcall_six(args)
    bare_cpu, bare_fps, bare_encodes = bare_window(6, args)
    print(f"  six: tcall fps {sorted(fps)}\n  bare fps {sorted(bare_fps)}", flush=True)
    window = f"{args.seconds:g} s window"
    return [
        Row(
            "encodes per captured frame, 6 members",
            "exactly 1",
            f"{spread(encodes, 2)}, {ratio(statistics.median(encodes), statistics.median(bare_encodes))}",
            spread(bare_encodes, 2),
            "median (min-max) of the 6 processes; tcall: video_encodes / frames_sent of the whole "
            f"call; bare: Vp8Encoder.encode calls per captured frame, {window}",
        ),
        Row(
            "6 members: fps received from each member, lowest of 30 pairs",
            ">= 14",
            f"{min(fps):.1f}, {ratio(min(fps), min(bare_fps))}",
            f"{min(bare_fps):.1f}",
            f"sent at 15 fps; {window}",
        ),
        Row(
            "6 members: fps received from each member, median of 30 pairs",
            "",
            f"{statistics.median(fps):.1f}, {ratio(statistics.median(fps), statistics.median(bare_fps))}",
            f"{statistics.median(bare_fps):.1f}",
            window,
        ),
        Row(
            "6 members: CPU per process, % of a core",
            "",
            f"{spread(cpu)}, {ratio(statistics.median(cpu), statistics.median(bare_cpu))}",
            spread(bare_cpu),
            f"all headless; {window}",
        ),
    ]


PARTS: dict[str, Callable[[argparse.Namespace], list[Row]]] = {
    "join": join_rows,
    "cpu": cpu_rows,
    "six": six_rows,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="join runs, each stack")
    parser.add_argument("--seconds", type=float, default=10.0, help="the measured window")
    parser.add_argument("--warmup", type=float, default=3.0, help="s after everyone joined")
    parser.add_argument("--only", default=",".join(PARTS), help="join,cpu,six")
    args = parser.parse_args(argv)
    print(f"before: {machine()}", flush=True)
    args.group = Group(Path(tempfile.mkdtemp()))
    rows: list[Row] = []
    try:
        for name in args.only.split(","):
            started = time.monotonic()
            try:
                got = PARTS[name](args)
            except Exception as exc:  # one part's failure still prints the others' figures
                traceback.print_exc()
                got = [Row(figure=f"({name})", goal="", tcall=f"failed: {exc}", baseline="")]
            rows += got
            took = time.monotonic() - started
            print(f"{name}: {took:.0f} s, load average after {load()}", flush=True)
    finally:
        args.group.stop()
    print(f"after: {machine()}\n")
    print(table(rows))
    print("\nratios: tcall / bare aiortc mesh in the same run")


if __name__ == "__main__":
    main()
