"""One TUI in a real terminal in a group call with two `tcall listen` processes (issue #17): it
starts the call by keys (g, space on two contacts, enter), shows a tile with moving video for each
member and the group code, and hangs up."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.tmux import Tmux
from tests.support.users import User, stop_leftovers
from tests.tui.test_tmux_call import COLS, ROWS, Pane, relay, setup_home, start_tui, tcall, tmux

__all__ = ["relay", "tmux"]  # the fixtures, for pytest


@pytest.fixture(autouse=True)
def no_leftover_processes() -> Iterator[None]:
    """A failed step must not leave the `tcall listen`s running, waiting for a call."""
    yield
    stop_leftovers()


SMALL = ["--resolution", "160x120", "--fps", "10", "--camera", "on"]


def moving_cells(pane: Pane) -> list[str]:
    return [row for row in pane.raw().splitlines() if row.count("▀") > 20]


def video_rows_per_column(pane: Pane) -> tuple[int, int]:
    """Rows of half-block video in the left and the right column of the 2x2 grid: ours and
    carol's on the left, bob's on the right."""
    rows = pane.text().splitlines()
    left = sum(row[: COLS // 2].count("▀") > 20 for row in rows)
    right = sum(row[COLS // 2 :].count("▀") > 20 for row in rows)
    return left, right


def test_one_tui_in_a_three_person_call(tmp_path: Path, relay: str, tmux: Tmux) -> None:
    home_a = tmp_path / "a"
    address_a = setup_home(home_a, relay)
    others = [User(name, tmp_path / name, relay) for name in ("bob", "carol")]
    for user in others:
        tcall(home_a, "contacts", "add", user.name, user.address)
        user.run("contacts", "add", "alice", address_a)
        for other in others:
            if other is not user:
                user.add(other)
    listeners = [u.listen("--auto-answer", "--once", "--duration", "12", *SMALL) for u in others]
    a = start_tui(tmux, "a", home_a)
    a.wait_for("● carol")
    a.keys("g")
    a.wait_for("Call together")
    for key in ("Space", "Down", "Space", "Enter"):  # one at a time, as a person types
        a.keys(key)
        time.sleep(0.3)
    text = a.wait_for(lambda t: "bob" in t and "carol" in t and "⏱" in t, timeout=30)
    assert "Group call" in text
    deadline = time.monotonic() + 20
    while len(first := moving_cells(a)) < ROWS // 3:
        assert time.monotonic() < deadline, f"no video in the tiles:\n{a.text()}"
        time.sleep(0.2)
    time.sleep(1.0)
    assert moving_cells(a) != first, "the tiles' video did not move"
    left, right = video_rows_per_column(a)
    assert left > ROWS // 2 and right > ROWS // 5, f"a tile shows no video:\n{a.text()}"
    a.keys("s")
    a.wait_for(lambda t: re.search(r"\d{5} \d{5} \d{5}", t) is not None)  # the group code
    a.keys("h")
    a.wait_for("Echo test")
    for listener, user in zip(listeners, others, strict=True):
        listener.finish(30)
        summary = [e for e in listener.events if e["event"] == "summary"][-1]
        frames = {m["member"]: m.get("frames_received", 0) for m in summary["members"]}
        assert set(frames) == {"alice", "bob", "carol"} - {user.name}
        assert frames["alice"] > 10, frames
