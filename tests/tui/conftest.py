"""Fixtures for the TUI tests: a truecolor terminal, loopback-only ICE, and ready-made contacts."""

from __future__ import annotations

from pathlib import Path

import pytest

from tcall.engine.contacts import ContactBook
from tcall.engine.identity import Identity


@pytest.fixture(autouse=True)
def tui_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLORTERM", "truecolor")
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.setenv("TCALL_ICE_ADDRESSES", "127.0.0.1")


@pytest.fixture
def friends(tcall_home: Path) -> ContactBook:
    """alice (verified), bob (blocked) and carol, with fixed keys."""
    book = ContactBook.load()
    for i, name in enumerate(("alice", "bob", "carol")):
        book.add(name, Identity.from_seed(bytes([i + 1]) * 32).public_key, "ws://127.0.0.1:9")
    book.set_verified("alice", True)
    book.set_blocked("bob", True)
    return book
