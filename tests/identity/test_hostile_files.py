"""Hostile files in the tcall home (issue #12, items 13 and 14): every command that reads one exits
12 with one `tcall: error:` line naming it, never a traceback, a hang or a memory blow-up; and a
change made through a stale copy of a store keeps what others wrote meanwhile (item 12)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from tcall.engine.address import format_address
from tcall.engine.contacts import ContactBook
from tcall.engine.errors import ExitCode
from tcall.engine.history import HISTORY_FILE, CallRecord, History
from tcall.engine.identity import Identity, load_or_create_identity
from tcall.engine.settings import Settings
from tests.support.cli import run_in_process

FRIEND = format_address(Identity.from_seed(b"\x42" * 32).public_key, "")
COMMANDS = {
    "identity.key": [["id"], ["contacts", "add", "friend", FRIEND]],
    "contacts.toml": [["contacts", "list"], ["contacts", "add", "friend", FRIEND]],
    "config.toml": [["settings", "list"], ["settings", "set", "presence", "nobody"], ["id"]],
    "history.json": [["history"], ["history", "--clear"]],
}
ALL = [args for commands in COMMANDS.values() for args in commands]
RECORD = {
    "contact": "bob",
    "direction": "incoming",
    "started_at": 1.7e9,
    "duration_s": 0.0,
    "outcome": "missed",
    "video": True,
}


def _fifo(path: Path) -> None:
    os.mkfifo(path, 0o600)


def _zero(path: Path) -> None:
    path.symlink_to("/dev/zero")


def _dangling(path: Path) -> None:
    path.symlink_to(path.parent / "gone")


def _folder(path: Path) -> None:
    path.mkdir(mode=0o700)


def _writable(path: Path) -> None:
    path.write_bytes(b"")
    path.chmod(0o666)


HOSTILE: dict[str, tuple[Callable[[Path], None], str]] = {
    "fifo": (_fifo, "is a FIFO, not a regular file"),
    "dev-zero": (_zero, "is a character device, not a regular file"),
    "dangling-symlink": (_dangling, "is a symbolic link to .*gone, which does not exist"),
    "folder": (_folder, "is a folder, not a regular file"),
    "world-writable": (_writable, r"writable by other users \(mode 0666\); run: chmod 600"),
}


def _refused(home: Path, args: list[str], match: str) -> str:
    result = run_in_process(home, *args)
    assert result.returncode == ExitCode.CONFIG, (args, result.stdout, result.stderr)
    err = result.stderr
    assert err.startswith("tcall: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    assert re.search(match, err), err
    return err


@pytest.mark.parametrize("kind", HOSTILE)
@pytest.mark.parametrize(
    ("name", "args"), [(name, args) for name, commands in COMMANDS.items() for args in commands]
)
def test_a_hostile_file_is_exit_12_in_one_line(
    tcall_home: Path, name: str, args: list[str], kind: str
) -> None:
    make, match = HOSTILE[kind]
    path = tcall_home / name
    make(path)
    err = _refused(tcall_home, args, match)
    assert str(path) in err


def test_a_dangling_key_symlink_never_becomes_a_new_identity(tcall_home: Path) -> None:
    (tcall_home / "identity.key").symlink_to(tcall_home / "elsewhere.key")
    _refused(tcall_home, ["id"], "symbolic link to .*elsewhere.key, which does not exist")
    assert not (tcall_home / "elsewhere.key").exists()
    assert (tcall_home / "identity.key").is_symlink()


def test_a_key_symlink_to_a_private_file_is_followed(tcall_home: Path, tmp_path: Path) -> None:
    target = tmp_path / "keys" / "tcall.key"
    target.parent.mkdir()
    target.write_bytes(b"\x07" * 32)
    target.chmod(0o600)
    (tcall_home / "identity.key").symlink_to(target)
    assert load_or_create_identity().seed == b"\x07" * 32


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o666])
def test_a_key_others_can_read_or_write_is_refused(tcall_home: Path, mode: int) -> None:
    path = tcall_home / "identity.key"
    path.write_bytes(b"\x07" * 32)
    path.chmod(mode)
    for args in COMMANDS["identity.key"]:
        _refused(tcall_home, args, f"mode {mode:04o}.*run: chmod 600 {path}")


@pytest.mark.parametrize("mode", [0o777, 0o775, 0o757, 0o1777])
def test_a_home_others_can_write_is_refused(tcall_home: Path, mode: int) -> None:
    tcall_home.chmod(mode)
    for args in ALL:
        _refused(tcall_home, args, f"writable by other users .*run: chmod 700 {tcall_home}$")
    assert list(tcall_home.iterdir()) == []  # nothing was created there


def test_a_group_readable_home_is_fine(tcall_home: Path) -> None:
    tcall_home.chmod(0o755)
    assert run_in_process(tcall_home, "id").returncode == ExitCode.OK


@pytest.mark.parametrize("args", ALL)
def test_a_home_that_is_a_file_is_exit_12(tmp_path: Path, args: list[str]) -> None:
    home = tmp_path / "home-file"
    home.write_text("not a folder")
    _refused(home, args, f"{home} is not a folder")
    assert home.read_text() == "not a folder"


@pytest.mark.parametrize("name", ["contacts.toml", "config.toml", "history.json"])
def test_a_file_over_the_size_cap_is_refused(tcall_home: Path, name: str) -> None:
    path = tcall_home / name
    with path.open("wb") as handle:
        handle.truncate(65 << 20)  # sparse: costs no disk
    for args in COMMANDS[name]:
        _refused(tcall_home, args, "is too large")


@pytest.mark.parametrize(
    "entries",
    [
        {"not": "a list"},
        [1],
        [RECORD | {"contact": 5}],
        [RECORD | {"started_at": "yesterday"}],
        [RECORD | {"started_at": True}],
        [RECORD | {"duration_s": None}],
        [RECORD | {"direction": "sideways"}],
        [RECORD | {"outcome": ["missed"]}],
        [RECORD | {"video": "yes"}],
        [RECORD | {"extra": 1}],
        [{k: v for k, v in RECORD.items() if k != "started_at"}],
    ],
)
def test_a_wrongly_typed_history_entry_is_exit_12(tcall_home: Path, entries: object) -> None:
    (tcall_home / HISTORY_FILE).write_text(json.dumps(entries))
    for args in COMMANDS["history.json"]:
        _refused(tcall_home, args, "unreadable call history")


def test_a_well_typed_history_with_integers_is_read(tcall_home: Path) -> None:
    (tcall_home / HISTORY_FILE).write_text(json.dumps([RECORD | {"started_at": 1_700_000_000}]))
    result = run_in_process(tcall_home, "history", "--json")
    assert result.returncode == ExitCode.OK, result.stderr


def test_stale_stores_keep_what_others_wrote(tcall_home: Path) -> None:
    """The app keeps its stores open while the CLI changes the files: a change through the app's
    older copy re-reads the file first instead of writing that copy back."""
    app_book, cli_book = ContactBook.load(), ContactBook.load()
    cli_book.add("carol", Identity.from_seed(b"\x01" * 32).public_key)
    app_book.add("dave", Identity.from_seed(b"\x02" * 32).public_key)
    cli_book.set_blocked("dave", True)
    app_book.set_verified("carol", True)
    assert {(c.name, c.verified, c.blocked) for c in ContactBook.load().contacts()} == {
        ("carol", True, False),
        ("dave", False, True),
    }

    app_settings, cli_settings = Settings.load(), Settings.load()
    cli_settings.set("presence", "nobody")
    app_settings.set("relay_only", "on")
    again = Settings.load()
    assert again.presence == "nobody" and again.relay_only

    clock = 1.7e9
    app_log, cli_log = History.open(30, lambda: clock), History.open(30, lambda: clock)
    cli_log.add(CallRecord("carol", "incoming", clock, 0.0, "missed"))
    app_log.add(CallRecord("dave", "outgoing", clock, 3.0, "answered"))
    assert sorted(r.contact for r in History.open(30, lambda: clock).records) == ["carol", "dave"]


def test_a_file_another_process_creates_mid_read_is_read_not_refused(
    tcall_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CI saw `settings set` refuse config.toml as "a symbolic link to ?" when a parallel writer's
    rename landed between a failed open and the look at what was there."""
    path = tcall_home / "config.toml"
    real_open = os.open
    raced = []

    def open_after_a_rename(file: object, flags: int, *args: object) -> int:
        if Path(str(file)) == path and not raced:
            raced.append(True)
            path.write_text('presence = "nobody"\n')
            path.chmod(0o600)
            raise FileNotFoundError(2, "No such file or directory")
        return real_open(file, flags, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", open_after_a_rename)
    assert Settings.load().presence == "nobody"
    assert raced
