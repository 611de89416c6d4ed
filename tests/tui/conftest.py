"""Fixtures for the TUI tests: a truecolor terminal, loopback-only ICE, ready-made contacts, and key
presses that do not wait out a busy call."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import textual.app

from tcall.engine.contacts import ContactBook
from tcall.engine.identity import Identity


@pytest.fixture(autouse=True)
def tui_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLORTERM", "truecolor")
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.setenv("TCALL_ICE_ADDRESSES", "127.0.0.1")


@pytest.fixture(autouse=True)
def keys_in_a_busy_app(monkeypatch: pytest.MonkeyPatch) -> None:
    """After each key, Pilot.press waits until the process looks idle, for at most a second, twice.
    During a call it never looks idle (it is encoding video), so every key cost two seconds. A
    quarter of that is plenty: press then still waits until the app has handled the key."""
    quick = functools.partial(textual.app.wait_for_idle, max_sleep=0.25)
    monkeypatch.setattr(textual.app, "wait_for_idle", quick)


@pytest.fixture
def friends(tcall_home: Path) -> ContactBook:
    """alice (verified), bob (blocked) and carol, with fixed keys."""
    book = ContactBook.load()
    for i, name in enumerate(("alice", "bob", "carol")):
        book.add(name, Identity.from_seed(bytes([i + 1]) * 32).public_key, "ws://127.0.0.1:9")
    book.set_verified("alice", True)
    book.set_blocked("bob", True)
    return book
