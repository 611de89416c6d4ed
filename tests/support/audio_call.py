"""Audio calls to measure: tcall's (two real `tcall` processes) or bare aiortc's, each through the
studio (tests/support/studio.py) and the lossy link (tests/support/lossy_link.py).

A `Stage` is made once (network, relay, PulseAudio, alice and bob); each `tcall()` or `bare()` places
one audio-only call from alice to bob, speaks a scene into both mouths once the call is connected,
records every mouth and ear on one clock, and hangs up. Nothing about tcall's internals is assumed:
only its command line, its settings, its `--json` events, and PulseAudio's PULSE_SOURCE/PULSE_SINK.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tests.support.cli import TCALL
from tests.support.lossy_link import BOB_IP, ROUTER_A_IP, Link, lossy_link
from tests.support.relays import ServeProcess
from tests.support.services import stop_process
from tests.support.studio import Studio, Tape, studio
from tests.support.users import User, stop_leftovers

ROOT = Path(__file__).resolve().parents[2]
AUDIO_ONLY = ("--video", "none", "--audio", "mic")
WITH_VIDEO = ("--video", "pattern", "--audio", "mic")  # bob answers with his camera off
LEAD_S = 1.5  # connected, and nothing spoken yet: devices and jitter buffers settle
TAIL_S = 1.5  # the last words still on their way
BARE_PORT = 7815
Loss = Callable[[], AbstractContextManager[Any]]


@dataclass
class Scene:
    """What each talker says, from the same first sample: float tracks at 48 kHz."""

    alice: np.ndarray
    bob: np.ndarray = field(default_factory=lambda: np.zeros(0))


@dataclass
class Take:
    """One recorded call: the tape, and what the processes said about it."""

    tape: Tape
    scene: Scene
    cpu_percent: float | None = None  # alice's process while the scene played, % of one core
    loss_counts: dict[str, int] | None = None  # the burst loss line's {"passed", "lost"}
    events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def stats(self, who: str) -> dict[str, Any]:
        """`who`'s last `stats` event (tcall only), merged over its `summary`."""
        seen = self.events.get(who, [])
        last: dict[str, Any] = {}
        for event in seen:
            if event.get("event") in ("stats", "summary"):
                last = {**last, **event}
        return last


class Stage:
    def __init__(self, folder: Path, room: Studio, link: Link, tcall_env: dict[str, str]) -> None:
        self.room = room
        self.link = link
        self.relay = ServeProcess(host=ROUTER_A_IP, prefix=link.router)
        env = {"TCALL_ICE_ADDRESSES": "", **tcall_env}  # each host offers its own address
        self.alice = User(
            "alice", folder / "alice", self.relay.url, {**room.env("alice"), **env}, link.alice
        )
        self.bob = User("bob", folder / "bob", self.relay.url, {**room.env("bob"), **env}, link.bob)
        self.alice.add(self.bob)
        self.bob.add(self.alice)
        self._set: dict[tuple[str, str], str] = {}  # (user, key): the value set last

    def settings(self) -> set[str]:
        """The setting keys the tcall under test knows (its own process: with `tcall_env` it may
        be another commit's tcall than the one this process imports)."""
        return set(json.loads(self._settings(self.alice, "list", "--json")))

    def _settings(self, user: User, *args: str) -> str:
        """`tcall settings ARGS` as `user`, in a process of the tcall under test."""
        result = subprocess.run(
            [*user.prefix, TCALL, "settings", *args],
            capture_output=True,
            text=True,
            timeout=60,
            env=user.env,
        )
        assert result.returncode == 0, f"tcall settings {' '.join(args)}: {result.stderr}"
        return result.stdout

    def tcall(
        self,
        scene: Scene,
        settings: dict[str, str] | None = None,
        loss: Loss | None = None,
        media: tuple[str, ...] = AUDIO_ONLY,
    ) -> Take:
        """alice calls bob (`tcall call` and `tcall listen --auto-answer`), both with `settings`;
        `media` as `tcall call` options (WITH_VIDEO: alice's video competes with her voice)."""
        for user in (self.alice, self.bob):
            for key, value in (settings or {}).items():
                if self._set.get((user.name, key)) != value:
                    self._settings(user, "set", key, value)
                    self._set[user.name, key] = value
        listener = self.bob.listen("--auto-answer", "--once", *media)
        caller = self.alice.start_call("bob", *media, "--connect-timeout", "20")
        try:
            caller.wait_for("state", state="connected")
            take = self._perform(scene, loss, caller.process.pid)
            with contextlib.suppress(BrokenPipeError, ValueError):  # it ended (its stdin closed)
                caller.send("hangup")
        finally:
            caller.finish()
            listener.finish()
        take.events = {"alice": caller.events, "bob": listener.events}
        return take

    def bare(self, scene: Scene, loss: Loss | None = None) -> Take:
        """The same call between two bare aiortc peers (tests/support/bare_audio.py)."""
        peer = [sys.executable, "-m", "tests.support.bare_audio"]
        callee = self._popen([*self.link.bob, *peer, "callee", BOB_IP, str(BARE_PORT)], "bob")
        caller = None
        try:
            _expect(callee, "ready")
            caller = self._popen(
                [*self.link.alice, *peer, "caller", BOB_IP, str(BARE_PORT)], "alice"
            )
            _expect(caller, '"connected"')
            return self._perform(scene, loss, caller.pid)
        finally:
            for process in (caller, callee):
                stop_process(process)

    def _popen(self, command: list[str], talker: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=ROOT,
            env=self.room.env(talker),
        )

    def _perform(self, scene: Scene, loss: Loss | None, pid: int) -> Take:
        with loss() if loss else contextlib.nullcontext() as lost, self.room.recording() as tape:
            time.sleep(LEAD_S)
            cpu, started = cpu_seconds(pid), time.monotonic()
            self.room.play(scene.alice, scene.bob)
            used = cpu_seconds(pid) - cpu
            elapsed = time.monotonic() - started
            time.sleep(TAIL_S)
        cpu_percent = 100 * used / elapsed if cpu >= 0 and used >= 0 else None
        return Take(tape, scene, cpu_percent, loss_counts=lost if isinstance(lost, dict) else None)

    def close(self) -> None:
        self.relay.stop()


def _expect(process: subprocess.Popen[str], text: str, timeout: float = 30) -> None:
    """Read `process`'s output until a line holds `text`."""
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stdout], [], [], max(0.0, deadline - time.monotonic()))
        line = process.stdout.readline() if ready else ""
        if text in line:
            return
        if ready and not line:
            break
    raise AssertionError(f"{process.args!r}: no {text!r} (exit {process.poll()})")


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of `pid` so far (-1 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return -1.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def cpu_hogs(count: int) -> Iterator[None]:
    """`count` processes that each keep a core busy, as other programs on a loaded machine do."""
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        yield
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


@contextmanager
def stage(folder: Path, tcall_env: dict[str, str] | None = None) -> Iterator[Stage]:
    """A stage under `folder`; `tcall_env` is added to the environment of both tcall processes."""
    with studio(folder / "studio") as room, lossy_link() as link:
        built = Stage(folder, room, link, tcall_env or {})
        try:
            yield built
        finally:
            stop_leftovers()
            built.close()
