"""Test helpers for calls between real tcall processes: users with their own TCALL_HOME, a relay.

Each User runs the real `tcall` console script with its own home, pinned to loopback ICE.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

from tests.relay.helpers import free_port

TCALL = str(Path(sys.executable).with_name("tcall"))
MEDIA = ["--video", "pattern", "--audio", "sine"]


class Relay:
    """A `tcall serve` process on a free loopback port."""

    def __init__(
        self, *extra: str, host: str = "127.0.0.1", prefix: list[str] | None = None
    ) -> None:
        self.port = free_port()
        self.url = f"ws://{host}:{self.port}"
        self.process = subprocess.Popen(
            [*(prefix or []), TCALL, "serve", "--host", host, "--port", str(self.port), *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert "listening" in line, line + (
            self.process.stderr.read() if self.process.stderr else ""
        )

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


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
        result = subprocess.run(
            [*self.prefix, TCALL, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env,
        )
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

    def __init__(self, user: User, args: list[str], stdin: int | IO[Any] | None) -> None:
        self.process = subprocess.Popen(
            [*user.prefix, TCALL, *args],
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=user.env,
        )
        self.events: list[dict[str, Any]] = []
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
        try:
            out, _ = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            out, _ = self.process.communicate()
        self.events += events(out)
        return self.process.returncode

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.finish()

    def stderr(self) -> str:
        if self.process.poll() is None or self.process.stderr is None:
            return "(running)"
        return self.process.stderr.read()


def events(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def pair(tmp_path: Path, relay: Relay) -> tuple[User, User]:
    """alice and bob, each a contact of the other, bob answering with his camera on."""
    alice = User("alice", tmp_path / "alice", relay.url)
    bob = User("bob", tmp_path / "bob", relay.url)
    alice.add(bob)
    bob.add(alice)
    bob.set("answer_with_camera", "on")
    return alice, bob
