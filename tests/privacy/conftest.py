"""Fixtures for privacy tests: real `tcall call` / `tcall listen` processes through a real
`tcall serve`.

Bookkeeping commands (settings, contacts, id, history) run the same CLI in-process, so that the
suite pays for process start-up only where a real process matters: the calls themselves.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tcall.tui.cli import main
from tests.calls.people import Relay, User

RING = ("--ring-timeout", "2")
REAL_PROCESSES = ("call", "listen")


class QuickUser(User):
    """A User whose commands other than `call` and `listen` run in-process through `main`."""

    def run(
        self, *args: str, timeout: float = 60, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        if args[0] in REAL_PROCESSES:
            return super().run(*args, timeout=timeout, check=check)
        with CliRunner().isolation(env={"TCALL_HOME": str(self.home)}) as (out, err, _):
            code = main(list(args))
            result = subprocess.CompletedProcess(
                list(args), code, out.getvalue().decode(), err.getvalue().decode()
            )
        if check:
            assert code == 0, f"tcall {' '.join(args)}: {result.stderr}"
        return result


@pytest.fixture(scope="module")
def relay() -> Iterator[Relay]:
    # One relay per module is safe: every test has fresh identities, so fresh mailboxes.
    server = Relay()
    yield server
    server.stop()


Couple = Callable[[str], tuple[User, User]]


@pytest.fixture
def couple(tmp_path: Path, relay: Relay) -> Couple:
    """Makes an alice and a bob, each a contact of the other, in a folder of their own, so that
    several couples can call at the same time."""

    def make(folder: str) -> tuple[User, User]:
        alice = QuickUser("alice", tmp_path / folder / "alice", relay.url)
        bob = QuickUser("bob", tmp_path / folder / "bob", relay.url)
        alice.add(bob)
        bob.add(alice)
        return alice, bob

    return make


@pytest.fixture
def people(couple: Couple) -> tuple[User, User]:
    return couple(".")


@pytest.fixture
def carol(tmp_path: Path, relay: Relay, people: tuple[User, User]) -> User:
    """A stranger to bob: she has bob's address, he does not have hers."""
    user = QuickUser("carol", tmp_path / "carol", relay.url)
    user.add(people[1])
    return user


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
