"""End to end in real terminals: a relay and two TUIs in tmux; A calls B by keys, B answers by key.

Each step is checked on screen with `capture-pane`: the incoming dialog, moving video in both
panes (half-block cells whose colours change between captures), the hang-up, and both histories.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.cli import TCALL, run_in_process
from tests.support.relays import ServeProcess
from tests.support.tmux import Tmux, tmux_server
from tests.support.users import User

COLS, ROWS = 100, 30
SGR = re.compile(r"\x1b\[[0-9;]*m")


class Pane:
    def __init__(self, tmux: Tmux, name: str) -> None:
        self.tmux, self.name = tmux, name

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", self.name, *keys)

    def raw(self) -> str:
        return self.tmux("capture-pane", "-p", "-e", "-t", self.name)

    def text(self) -> str:
        return SGR.sub("", self.raw())

    def wait_for(self, what: str | Callable[[str], bool], timeout: float = 20.0) -> str:
        check = (lambda text: what in text) if isinstance(what, str) else what
        deadline = time.monotonic() + timeout
        while True:
            text = self.text()
            if check(text):
                return text
            assert time.monotonic() < deadline, f"{self.name}: waited for {what!r}; screen:\n{text}"
            time.sleep(0.2)


def video_rows(pane: Pane) -> list[str]:
    """The raw rows that hold half-block video cells (with their colour escapes)."""
    return [row for row in pane.raw().splitlines() if row.count("▀") > COLS // 2]


def tcall(home: Path, *args: str) -> str:
    """Bookkeeping (settings, contacts, id) in-process: the TUIs are the processes under test."""
    result = run_in_process(home, *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture
def relay() -> Iterator[str]:
    server = ServeProcess()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    with tmux_server() as server:
        yield server


def setup_home(home: Path, relay: str) -> str:
    home.mkdir()
    for key, value in (
        ("relay_url", relay),
        ("answer_with_camera", "on"),
        ("camera", "pattern"),
        ("microphone", "sine"),
        ("render", "halfblock"),
    ):
        tcall(home, "settings", "set", key, value)
    return str(json.loads(tcall(home, "id", "--json"))["address"])


def start_tui(tmux: Tmux, name: str, home: Path) -> Pane:
    env = {"TCALL_HOME": str(home), "TCALL_ICE_ADDRESSES": "127.0.0.1", "COLORTERM": "truecolor"}
    tmux.new_session(TCALL, size=(COLS, ROWS), name=name, env=env)
    return Pane(tmux, name)


def test_a_calls_b_by_keys_in_two_terminals(tmp_path: Path, relay: str, tmux: Tmux) -> None:
    home_a, home_b = tmp_path / "a", tmp_path / "b"
    address_a, address_b = setup_home(home_a, relay), setup_home(home_b, relay)
    tcall(home_a, "contacts", "add", "bob", address_b)
    tcall(home_b, "contacts", "add", "alice", address_a)
    a = start_tui(tmux, "a", home_a)
    b = start_tui(tmux, "b", home_b)
    for pane in (a, b):
        pane.wait_for("relay: online")
    a.wait_for("● bob")  # B is online: presence reached A

    # 1. A calls B from the contacts list, by keys.
    a.keys("Down", "Enter")
    a.wait_for(lambda text: "bob" in text and ("Calling" in text or "Ringing" in text))
    # 2. B's incoming dialog appears, and B accepts by key.
    b.wait_for("Incoming video call")
    assert "alice" in b.text()
    b.keys("Enter")
    # 3. Both panes show video: half-block cells whose colours change between captures.
    for pane in (a, b):
        pane.wait_for("⏱")
        deadline = time.monotonic() + 20
        while len(first := video_rows(pane)) <= ROWS // 2:
            assert time.monotonic() < deadline, f"{pane.name}: no video:\n{pane.text()}"
            time.sleep(0.2)
        time.sleep(1.0)
        assert video_rows(pane) != first, f"{pane.name}: the video did not move"
    # 4. A hangs up.
    a.keys("h")
    for pane in (a, b):
        pane.wait_for("Echo test")
    # 5. Both history screens show the call.
    a.keys("h")
    b.keys("h")
    a.wait_for(lambda text: re.search(r"bob\s+→\s+answered", text) is not None)
    b.wait_for(lambda text: re.search(r"alice\s+←\s+answered", text) is not None)
    for pane in (a, b):
        pane.keys("Escape", "q")


def test_closing_the_terminal_hangs_up_and_keeps_the_history(
    tmp_path: Path, relay: str, tmux: Tmux
) -> None:
    """Issue #13, item 2, for the TUI: killing its tmux session (SIGHUP, as a dropped SSH session
    would) hangs up the call at once and writes history; the peer is not left waiting ~30 s."""
    home_a = tmp_path / "a"
    address_a = setup_home(home_a, relay)
    bob = User("bob", tmp_path / "b", relay)
    bob.set("answer_with_camera", "on")
    tcall(home_a, "contacts", "add", "bob", bob.address)
    bob.run("contacts", "add", "alice", address_a)
    listening = bob.listen("--auto-answer")
    a = start_tui(tmux, "a", home_a)
    a.wait_for("● bob")
    a.keys("Down", "Enter")
    listening.wait_for("stats")  # media flows both ways
    a.wait_for("⏱")
    tmux("kill-session", "-t", "a")
    started = time.monotonic()
    summary = listening.wait_for("summary", timeout=20)
    assert time.monotonic() - started < 10
    assert summary["outcome"] == "answered"
    listening.stop()
    deadline = time.monotonic() + 10
    while not (records := json.loads(tcall(home_a, "history", "--json"))["history"]):
        assert time.monotonic() < deadline, "alice's TUI wrote no history"
        time.sleep(0.2)
    assert [(r["contact"], r["outcome"]) for r in records] == [("bob", "answered")]
