"""The contact book: pinned keys, no silent key change, flags, lookups, and atomic 0600 storage."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tcall.engine.contacts import ContactBook
from tcall.engine.errors import ConfigError, ExitCode, IdentityError, UsageError
from tcall.engine.identity import Identity
from tcall.engine.locking import LOCK_FILE
from tcall.engine.wire import SenderStatus

ALICE = Identity.from_seed(b"\x01" * 32).public_key
BOB = Identity.from_seed(b"\x02" * 32).public_key
MALLORY = Identity.from_seed(b"\x03" * 32).public_key
RELAY = "ws://127.0.0.1:7711"


def _reload(book: ContactBook) -> ContactBook:
    return ContactBook.load(book.path)


@pytest.fixture
def book() -> ContactBook:
    book = ContactBook.load()
    book.add("alice", ALICE, RELAY)
    return book


def test_add_persists_with_mode_0600(book: ContactBook, tcall_home: Path) -> None:
    assert book.path == tcall_home / "contacts.toml"
    assert stat.S_IMODE(book.path.stat().st_mode) == 0o600
    alice = _reload(book).get("alice")
    assert (alice.public_key, alice.relay_url) == (ALICE, RELAY)
    assert not (alice.verified or alice.blocked or alice.auto_answer)


def test_changed_key_for_a_name_needs_replace_and_loses_verification(book: ContactBook) -> None:
    book.set_verified("alice", True)
    book.set_blocked("alice", True)
    book.set_auto_answer("alice", True)
    with pytest.raises(IdentityError, match="already has a different key.*--replace") as info:
        book.add("alice", MALLORY, RELAY)
    assert info.value.code == ExitCode.IDENTITY
    assert _reload(book).get("alice").public_key == ALICE
    alice = book.add("alice", MALLORY, "wss://elsewhere.example", replace_key=True)
    assert alice.public_key == MALLORY and alice.relay_url == "wss://elsewhere.example"
    assert not alice.verified and not alice.auto_answer
    assert alice.blocked  # a block survives a key change
    assert _reload(book).get("alice") == alice


def test_re_adding_the_same_key_keeps_verification(book: ContactBook) -> None:
    book.set_verified("alice", True)
    assert book.add("alice", ALICE, "ws://127.0.0.1:7722").verified


def test_one_key_cannot_have_two_names(book: ContactBook) -> None:
    with pytest.raises(UsageError, match="already belongs to contact alice"):
        book.add("alice2", ALICE)


def test_rename_remove_block_unblock(book: ContactBook) -> None:
    book.add("bob", BOB)
    with pytest.raises(UsageError, match="already exists"):
        book.rename("alice", "bob")
    book.rename("alice", "ally")
    assert [c.name for c in _reload(book).contacts()] == ["ally", "bob"]
    book.set_blocked("ally", True)
    assert _reload(book).get("ally").blocked
    book.set_blocked("ally", False)
    assert not _reload(book).get("ally").blocked
    book.remove("ally")
    assert [c.name for c in _reload(book).contacts()] == ["bob"]


@pytest.mark.parametrize("op", ["remove", "block", "verify", "rename"])
def test_unknown_contact(book: ContactBook, op: str) -> None:
    calls = {
        "remove": lambda: book.remove("zed"),
        "block": lambda: book.set_blocked("zed", True),
        "verify": lambda: book.set_verified("zed", True),
        "rename": lambda: book.rename("zed", "zz"),
    }
    with pytest.raises(UsageError, match="^unknown contact: zed$"):
        calls[op]()


@pytest.mark.parametrize("name", ["", "-x", "a b", "x" * 65, "a/b", "_a"])
def test_bad_names(book: ContactBook, name: str) -> None:
    with pytest.raises(UsageError, match="bad contact name"):
        book.add(name, BOB)


def test_lookups(book: ContactBook) -> None:
    assert book.lookup(ALICE) == SenderStatus.known("alice")
    assert book.lookup(MALLORY) == SenderStatus.unknown()


def test_a_crash_during_save_keeps_the_old_file(
    book: ContactBook, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = book.path.read_bytes()

    def crash(src: str, dst: str) -> None:
        raise OSError(5, "I/O error")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(ConfigError, match="cannot write .*I/O error"):
        book.add("bob", BOB)
    assert book.path.read_bytes() == before
    assert sorted(p.name for p in book.path.parent.iterdir()) == [LOCK_FILE, "contacts.toml"]


@pytest.mark.parametrize(
    "text",
    [
        "contact = [",
        "contact = 3",
        "[[contact]]\nname = 'x'\n",
        "[[contact]]\nname = 'x'\nkey = 'zz'\n",
        "[[contact]]\nname = 'x y'\nkey = 'aaaa'\n",
        "[[contact]]\nname = 'x'\nkey = '" + "a" * 52 + "'\nverified = 'yes'\n",
    ],
)
def test_a_damaged_file_is_a_config_error(tcall_home: Path, text: str) -> None:
    (tcall_home / "contacts.toml").write_text(text)
    with pytest.raises(ConfigError) as info:
        ContactBook.load()
    assert "\n" not in str(info.value)
