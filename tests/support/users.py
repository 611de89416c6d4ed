"""People for calls between real tcall processes: each with their own TCALL_HOME, pinned to
loopback ICE, calling and listening as real `tcall` processes through a relay.

Their bookkeeping commands (settings, contacts, id, history) run the same CLI in-process, so that
the suite pays for a process start only where a real process matters: the calls themselves.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from tests.support.cli import TCALL, events, run_in_process

MEDIA = ["--video", "pattern", "--audio", "sine"]
REAL_PROCESSES = ("call", "listen")
RING = ("--ring-timeout", "2")


class User:
    def __init__(
        self,
        name: str,
        home: Path,
        relay_url: str,
        env: dict[str, str] | None = None,
        prefix: list[str] | None = None,
    ) -> None:
        self.name = name
        self.prefix = prefix or []  # e.g. ["ip", "netns", "exec", "h1"] to run on a test host
        self.home = home
        self.env = {**os.environ, "TCALL_HOME": str(home), "TCALL_ICE_ADDRESSES": "127.0.0.1"}
        self.env.update(env or {})
        self.run("settings", "set", "relay_url", relay_url)
        self.address = self.json("id", "--json")["address"]

    def run(
        self, *args: str, timeout: float = 60, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """`tcall ARGS` as this user: a real process for `call` and `listen`, else in-process."""
        if args[0] in REAL_PROCESSES:
            result = subprocess.run(
                [*self.prefix, TCALL, *args],
                capture_output=True,
                text=True,
                timeout=timeout,
                env=self.env,
            )
        else:
            result = run_in_process(self.home, *args)
        if check:
            assert result.returncode == 0, f"tcall {' '.join(args)}: {result.stderr}"
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args).stdout)

    def add(self, other: User) -> None:
        self.run("contacts", "add", other.name, other.address)

    def set(self, key: str, value: str) -> None:
        self.run("settings", "set", key, value)

    def call(
        self, name: str, *args: str, timeout: float = 90
    ) -> tuple[int, list[dict[str, Any]], str]:
        result = self.run("call", name, *MEDIA, "--json", *args, timeout=timeout, check=False)
        return result.returncode, events(result.stdout), result.stderr

    def listen(self, *args: str, stdin: int | IO[Any] | None = subprocess.DEVNULL) -> Listener:
        return Listener(self, ["listen", *MEDIA, "--json", *args], stdin)

    def start_call(self, name: str, *args: str) -> Listener:
        """`tcall call NAME` in the background, with stdin open for control commands."""
        return Listener(self, ["call", name, *MEDIA, "--json", *args], subprocess.PIPE)


class Listener:
    """A background `tcall listen --json` (or `call`) process; `wait_for(event)` reads its events."""

    started: list[Listener] = []  # every one so far: `stop_leftovers` ends those still running

    def __init__(self, user: User, args: list[str], stdin: int | IO[Any] | None) -> None:
        self.process = subprocess.Popen(
            [*user.prefix, TCALL, *args],
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=user.env,
        )
        Listener.started.append(self)
        self.events: list[dict[str, Any]] = []
        self._stderr: str | None = None
        self.wait_for("relay", state="online")

    def wait_for(self, kind: str, timeout: float = 30, **match: Any) -> dict[str, Any]:
        assert self.process.stdout is not None
        for event in self.events:
            if event["event"] == kind and all(event.get(k) == v for k, v in match.items()):
                return event
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            event = json.loads(line)
            self.events.append(event)
            if event["event"] == kind and all(event.get(k) == v for k, v in match.items()):
                return event
        raise AssertionError(f"no {kind} {match} event; saw {self.events}; stderr: {self.stderr()}")

    def read_one(self) -> dict[str, Any] | None:
        """Read the next event (None at the end of output)."""
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            return None
        event: dict[str, Any] = json.loads(line)
        self.events.append(event)
        return event

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def finish(self, timeout: float = 30) -> int:
        """Wait for the process to end; every event it printed is in `events` then.

        Not `communicate()`: it reads the pipe itself, past what `wait_for`'s readline has already
        buffered, so lines printed just after the last one waited for would be lost."""
        if self.process.stdin is not None and not self.process.stdin.closed:
            self.process.stdin.close()
        out: list[str] = []
        err: list[str] = []
        readers = [
            threading.Thread(target=lambda: out.append(self.process.stdout.read()), daemon=True),  # type: ignore[union-attr]
            threading.Thread(target=lambda: err.append(self.process.stderr.read()), daemon=True),  # type: ignore[union-attr]
        ]
        for reader in readers:
            reader.start()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for reader in readers:
            reader.join(10)
        self.events += events("".join(out))
        self._stderr = "".join(err)
        return self.process.returncode

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.finish()

    def stderr(self) -> str:
        if self.process.poll() is None:
            return "(running)"
        if self._stderr is None and self.process.stderr is not None:
            self._stderr = self.process.stderr.read()
        return self._stderr or ""


Couple = Callable[[str], tuple[User, User]]  # makes an alice and a bob in a folder of their own


def stop_leftovers() -> None:
    """End the background processes a test left running (a failed assertion skips its `stop()`),
    so that they do not go on using a CPU the next tests need."""
    while Listener.started:
        listener = Listener.started.pop()
        if listener.process.poll() is None:
            listener.process.kill()
            listener.process.communicate()


def pair(tmp_path: Path, relay_url: str) -> tuple[User, User]:
    """alice and bob, each a contact of the other, bob answering with his camera on."""
    alice = User("alice", tmp_path / "alice", relay_url)
    bob = User("bob", tmp_path / "bob", relay_url)
    alice.add(bob)
    bob.add(alice)
    bob.set("answer_with_camera", "on")
    return alice, bob


def sent_by(name: str) -> dict[str, Any]:
    """`wait_for` match keywords for an event from `name` ("from" is a Python keyword)."""
    return {"from": name}


def history(user: User) -> list[dict[str, Any]]:
    """`tcall history --json` of `user`, newest first."""
    records: list[dict[str, Any]] = user.json("history", "--json")["history"]
    return records


def caller_view(code: int, out: list[dict[str, Any]], err: str) -> dict[str, Any]:
    """Everything a caller can observe about a call, minus ids, URLs and timings."""
    summary = out[-1]
    return {
        "exit": code,
        "outcome": summary["outcome"],
        "reason": summary.get("reason"),
        "frames_received": summary.get("frames_received"),
        "events": [
            (e["event"], e.get("state"), e.get("contact"), e.get("online"))
            for e in out
            if e["event"] not in ("relay", "notice", "summary")
        ],
        "stderr": err,
    }
