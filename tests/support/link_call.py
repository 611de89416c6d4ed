"""alice calls bob across tests/support/lossy_link.py's router, the relay on the router: the setup
the network tests share. Real `tcall call` and `tcall listen --auto-answer` processes, each host
offering its own addresses as a user's would (not loopback)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.lossy_link import ROUTER_A_IP, Link
from tests.support.relays import ServeProcess
from tests.support.users import Listener, User, stop_leftovers


@dataclass
class LinkCall:
    alice: User
    bob: User
    caller: Listener  # alice's `tcall call bob`, stdin open for control lines
    listener: Listener  # bob's `tcall listen --auto-answer --once`
    relay: ServeProcess

    def hang_up(self) -> dict[str, Any]:
        """alice hangs up; her summary (her process must exit 0)."""
        self.caller.send("hangup")
        summary = self.caller.wait_for("summary")
        assert self.caller.finish() == 0, self.caller.stderr()
        return summary


@contextmanager
def call_across(link: Link, folder: Path, *caller_args: str) -> Iterator[LinkCall]:
    """alice calls bob and both say `connected`; everything is stopped when the block ends."""
    relay = ServeProcess(host=ROUTER_A_IP, prefix=link.router)
    env = {"TCALL_ICE_ADDRESSES": ""}
    started: list[Listener] = []
    try:
        alice = User("alice", folder / "alice", relay.url, env, link.alice)
        bob = User("bob", folder / "bob", relay.url, env, link.bob)
        alice.add(bob)
        bob.add(alice)
        started.append(bob.listen("--auto-answer", "--once"))
        started.append(alice.start_call("bob", "--connect-timeout", "20", *caller_args))
        listener, caller = started
        caller.wait_for("state", state="connected")
        listener.wait_for("state", state="connected")
        yield LinkCall(alice, bob, caller, listener, relay)
    finally:
        for process in reversed(started):
            process.finish()
        stop_leftovers()
        relay.stop()


def next_event(who: Listener, kind: str, timeout: float, **match: Any) -> dict[str, Any]:
    """The next `kind` event from now on (earlier ones do not count)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        event = who.read_one()
        assert event is not None, f"the process ended; stderr: {who.stderr()}"
        if event["event"] == kind and all(event.get(k) == v for k, v in match.items()):
            return event
    raise AssertionError(f"no {kind} {match} within {timeout} s; saw {who.events[-8:]}")
