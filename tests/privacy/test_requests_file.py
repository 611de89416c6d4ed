"""Pending contact requests (issue #13 item 6), in process: `requests.json` (one entry per key, at
most MAX_REQUESTS, 0600, written atomically without losing another process's change, hostile files
refused), the `tcall contacts requests|accept|ignore|block` commands, and what a flood of requests
costs the Phone. Nothing here needs a relay."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from tcall.engine import requests as requests_module
from tcall.engine.address import format_address
from tcall.engine.contacts import ContactBook
from tcall.engine.errors import ConfigError, ExitCode, UsageError
from tcall.engine.events import ContactRequested, Event, Notice
from tcall.engine.identity import Identity, load_or_create_identity
from tcall.engine.phone import QUOTA_WINDOW_S, SHOWN_PER_WINDOW, Phone
from tcall.engine.requests import (
    MAX_REQUESTS,
    REQUESTS_FILE,
    ContactRequest,
    RequestBook,
    accept,
    block,
    ignore,
)
from tcall.engine.wire import seal_message
from tests.support.cli import error_line, json_output, main

RELAY = "ws://relay.example:7711"


def stranger(i: int) -> Identity:
    return Identity.from_seed(i.to_bytes(32, "big"))


def noted(book: RequestBook, i: int, name: str = "", at: float | None = None) -> ContactRequest:
    request = ContactRequest(stranger(i).public_key, name, RELAY, float(i) if at is None else at)
    book.note(request)
    return request


def stored(home: Path) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = json.loads((home / REQUESTS_FILE).read_text())
    return entries


def test_one_entry_per_key_newest_first_file_0600(tcall_home: Path) -> None:
    book = RequestBook.load()
    noted(book, 1, "dave", at=10.0)
    noted(book, 2, "erin", at=11.0)
    noted(book, 1, "david", at=12.0)  # dave again, with another name: it replaces his first
    book.save()
    assert [(r.name, r.received_at) for r in RequestBook.load().pending()] == [
        ("david", 12.0),
        ("erin", 11.0),
    ]
    assert stat.S_IMODE((tcall_home / REQUESTS_FILE).stat().st_mode) == 0o600
    assert not [p for p in tcall_home.iterdir() if p.name.startswith(f".{REQUESTS_FILE}.")]


def test_a_flood_keeps_the_newest_max_requests(tcall_home: Path) -> None:
    book = RequestBook.load()
    for i in range(1, MAX_REQUESTS + 31):
        noted(book, i)
    assert len(book.pending()) == MAX_REQUESTS
    book.save()
    kept = RequestBook.load().pending()
    assert len(kept) == MAX_REQUESTS == len(stored(tcall_home))
    assert [r.received_at for r in kept] == [float(i) for i in range(MAX_REQUESTS + 30, 30, -1)]


def test_a_save_keeps_what_another_process_answered_meanwhile(tcall_home: Path) -> None:
    phone_book = RequestBook.load()  # the app's copy
    noted(phone_book, 1, "dave")
    phone_book.save()
    ignore(RequestBook.load(), "dave")  # `tcall contacts ignore dave` meanwhile
    noted(phone_book, 2, "erin")
    phone_book.save()
    assert [r.name for r in RequestBook.load().pending()] == ["erin"]  # dave stays answered


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        '{"key": 1}',
        '[{"key": "aaaa", "name": "", "relay": "", "received_at": 1}]',
        '[{"key": "%s", "name": "\\u001b]0;x", "relay": "", "received_at": 1}]',
        '[{"key": "%s", "name": "", "relay": "http://x", "received_at": 1}]',
        '[{"key": "%s", "name": "", "relay": "", "received_at": "now"}]',
        '[{"key": "%s", "name": "", "relay": "", "received_at": 1, "extra": 1}]',
    ],
)
def test_a_damaged_file_is_one_line_and_exit_12(
    tcall_home: Path, capsys: pytest.CaptureFixture[str], content: str
) -> None:
    key = requests_module._key_text(stranger(1).public_key)
    (tcall_home / REQUESTS_FILE).write_text(content.replace("%s", key))
    with pytest.raises(ConfigError):
        RequestBook.load()
    assert "unreadable contact requests" in error_line(
        capsys, ["contacts", "requests"], ExitCode.CONFIG
    )


def test_a_file_others_may_write_is_refused(tcall_home: Path) -> None:
    path = tcall_home / REQUESTS_FILE
    path.write_text("[]")
    os.chmod(path, 0o666)
    with pytest.raises(ConfigError, match="writable by other users"):
        RequestBook.load()


def test_find_by_name_or_fingerprint_prefix(tcall_home: Path) -> None:
    book = RequestBook.load()
    dave = noted(book, 1, "dave")
    twin = noted(book, 2, "dave")
    assert book.find(dave.fingerprint[:9]) == dave  # "1a2b 3c4d": spaces do not matter
    assert book.find(twin.fingerprint.replace(" ", "")[:12].upper()) == twin
    with pytest.raises(UsageError, match="2 contact requests match"):
        book.find("dave")
    with pytest.raises(UsageError, match="no contact request from"):
        book.find(dave.fingerprint[:4])  # too short to name anyone
    with pytest.raises(UsageError, match="no contact request from"):
        book.find("erin")


def test_accept_adds_the_signing_key_and_relay_and_answers_the_request(tcall_home: Path) -> None:
    book = RequestBook.load()
    dave = noted(book, 1, "dave")
    contact = accept(book, ContactBook.load(), "dave")
    assert (contact.name, contact.public_key, contact.relay_url) == ("dave", dave.public_key, RELAY)
    assert not contact.verified and not contact.blocked
    assert RequestBook.load().pending() == []


def test_accept_needs_a_free_valid_name(tcall_home: Path) -> None:
    book = RequestBook.load()
    contacts = ContactBook.load()
    contacts.add("dave", stranger(99).public_key)  # the dave we know
    nameless = noted(book, 1, "")
    with pytest.raises(UsageError, match="suggested no name"):
        accept(book, contacts, nameless.fingerprint[:9])
    with pytest.raises(UsageError, match="already have a contact called dave"):
        accept(book, contacts, nameless.fingerprint[:9], "dave")
    with pytest.raises(UsageError, match="bad contact name"):
        accept(book, contacts, nameless.fingerprint[:9], "\x1b[2J")
    assert accept(book, contacts, nameless.fingerprint[:9], "dave2").name == "dave2"
    assert ContactBook.load().get("dave").public_key == stranger(99).public_key  # untouched


def test_block_makes_a_blocked_contact(tcall_home: Path) -> None:
    book = RequestBook.load()
    nameless = noted(book, 1, "")
    contact = block(book, ContactBook.load(), nameless.fingerprint[:9])
    assert contact.blocked and contact.public_key == nameless.public_key
    assert contact.name == "blocked-" + nameless.fingerprint.replace(" ", "")[:8]
    assert RequestBook.load().pending() == []


def test_the_commands(tcall_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    book = RequestBook.load()
    dave = noted(book, 1, "dave", at=1_800_000_000.0)
    erin = noted(book, 2, "", at=1_800_000_001.0)
    mallory = noted(book, 3, "mallory", at=1_800_000_002.0)
    book.save()

    listed = json_output(capsys, ["contacts", "requests", "--json"])
    assert listed == {"requests": [r.to_json() for r in (mallory, erin, dave)]}
    assert main(["contacts", "requests"]) == ExitCode.OK
    out, err = capsys.readouterr()
    assert f"dave wants to reach you (fingerprint {dave.fingerprint})  {RELAY}" in out
    assert f"unknown {erin.fingerprint[:19]} wants to reach you" in out
    assert "tcall contacts accept" in err

    assert main(["contacts", "accept", "dave"]) == ExitCode.OK
    assert "added dave" in capsys.readouterr().out
    assert main(["contacts", "accept", erin.fingerprint[:9], "--name", "erin"]) == ExitCode.OK
    capsys.readouterr()
    assert main(["contacts", "block", "mallory"]) == ExitCode.OK
    assert "blocked mallory" in capsys.readouterr().out
    contacts = {c.name: c for c in ContactBook.load().contacts()}
    assert contacts["dave"].public_key == dave.public_key
    assert contacts["erin"].public_key == erin.public_key
    assert contacts["mallory"].blocked and contacts["mallory"].public_key == mallory.public_key
    assert json_output(capsys, ["contacts", "requests", "--json"]) == {"requests": []}
    assert main(["contacts", "requests"]) == ExitCode.OK
    assert capsys.readouterr().out == "no contact requests\n"

    for argv in (["accept", "nobody"], ["ignore", "nobody"], ["block", "nobody"]):
        assert "nobody" in error_line(capsys, ["contacts", *argv], ExitCode.USAGE)


def test_ignore_forgets(tcall_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    book = RequestBook.load()
    noted(book, 1, "dave")
    book.save()
    assert main(["contacts", "ignore", "dave"]) == ExitCode.OK
    assert "ignored the request from dave" in capsys.readouterr().out
    assert RequestBook.load().pending() == [] and ContactBook.load().contacts() == []


def test_add_says_to_ask_back_and_answers_a_pending_request(
    tcall_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    book = RequestBook.load()
    dave = noted(book, 1, "dave")
    book.save()
    assert main(["contacts", "add", "dave", format_address(dave.public_key, RELAY)]) == 0
    out = capsys.readouterr().out
    assert "ask dave to add you too" in out and "tcall contacts request dave" in out
    assert RequestBook.load().pending() == []


class Ticks:
    """A clock that moves a millisecond each time it is read: every request is newer than the one
    before, as on a real machine, but never by chance."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        self.now += 0.001
        return self.now


async def _flood(count: int, events: list[Event]) -> Phone:
    phone = Phone(events.append, clock=Ticks())
    me = load_or_create_identity()
    for i in range(1, count + 1):
        sealed = seal_message(
            stranger(i), me.public_key, "request", "", phone.clock(), relay=RELAY, name=f"s{i}"
        )
        await phone._dispatch(sealed)
    return phone


def test_a_flood_of_requests_costs_a_few_events_and_writes_a_minute(
    tcall_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes: list[Path] = []
    write = requests_module.write_atomic

    def counted(path: Path, data: bytes, *args: Any, **kwargs: Any) -> bool:
        writes.append(path)
        return write(path, data, *args, **kwargs)

    monkeypatch.setattr(requests_module, "write_atomic", counted)
    events: list[Event] = []
    flood = 300

    async def run() -> None:
        phone = await _flood(flood, events)
        assert len(writes) == SHOWN_PER_WINDOW  # the ones shown; the rest wait for the minute
        assert len(phone.snapshot.requests) <= MAX_REQUESTS
        phone._close_requests()  # the minute is over (QUOTA_WINDOW_S)
        await phone.close()

    asyncio.run(run())
    assert QUOTA_WINDOW_S == 60.0
    shown = [e for e in events if isinstance(e, ContactRequested)]
    assert [e.name for e in shown] == [f"s{i}" for i in range(1, SHOWN_PER_WINDOW + 1)]
    notices = [e.message for e in events if isinstance(e, Notice)]
    assert f"{flood - SHOWN_PER_WINDOW} more contact requests from strangers" in notices[0]
    assert len(writes) == SHOWN_PER_WINDOW + 1
    kept = RequestBook.load().pending()
    assert len(kept) == MAX_REQUESTS
    assert {r.name for r in kept} == {f"s{i}" for i in range(flood - MAX_REQUESTS + 1, flood + 1)}
