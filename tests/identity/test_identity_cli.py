"""`tcall id` and `tcall contacts …` run in-process through `tui.cli.main`."""

from __future__ import annotations

import io
import stat
from pathlib import Path

import pytest

from tcall.engine.address import format_address, parse_address
from tcall.engine.errors import ExitCode
from tcall.engine.identity import Identity
from tcall.engine.safety import safety_number
from tcall.tui.cli import main
from tests.support.cli import error_line as _error
from tests.support.cli import json_output as _json

FRIEND = Identity.from_seed(b"\x42" * 32)
FRIEND_ADDRESS = format_address(FRIEND.public_key, "ws://127.0.0.1:7711")


def test_id_creates_the_key_and_shows_address_qr_fingerprint(
    capsys: pytest.CaptureFixture[str], tcall_home: Path
) -> None:
    assert main(["settings", "set", "relay_url", "ws://127.0.0.1:7711"]) == ExitCode.OK
    capsys.readouterr()
    assert main(["id"]) == ExitCode.OK
    out = capsys.readouterr().out
    key_file = tcall_home / "identity.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    me = Identity.from_seed(key_file.read_bytes())
    assert format_address(me.public_key, "ws://127.0.0.1:7711") in out
    assert me.fingerprint in out
    assert "▀" in out or "▄" in out  # the QR code
    info = _json(capsys, ["id", "--json"])
    assert info == {
        "address": format_address(me.public_key, "ws://127.0.0.1:7711"),
        "fingerprint": me.fingerprint,
        "relay": "ws://127.0.0.1:7711",
    }


def test_home_option_moves_every_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    home = tmp_path / "elsewhere"
    info = _json(capsys, ["--home", str(home), "id", "--json"])
    assert isinstance(info, dict) and info["relay"] == ""
    assert (home / "identity.key").exists()
    key = Identity.from_seed((home / "identity.key").read_bytes()).public_key
    assert parse_address(info["address"]).public_key == key


def test_contacts_add_list_verify(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tcall_home: Path
) -> None:
    assert main(["contacts", "add", "friend", FRIEND_ADDRESS]) == ExitCode.OK
    assert "unverified" in capsys.readouterr().out
    listed = _json(capsys, ["contacts", "list", "--json"])
    assert listed == {
        "contacts": [
            {
                "name": "friend",
                "address": FRIEND_ADDRESS,
                "fingerprint": FRIEND.fingerprint,
                "relay": "ws://127.0.0.1:7711",
                "verified": False,
                "blocked": False,
                "auto_answer": False,
            }
        ]
    }
    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))
    assert main(["contacts", "verify", "friend"]) == ExitCode.IDENTITY
    out = capsys.readouterr().out
    me = Identity.from_seed((tcall_home / "identity.key").read_bytes())
    number = safety_number(me.public_key, FRIEND.public_key)
    groups = [number[i : i + 5] for i in range(0, 60, 5)]
    assert " ".join(groups[:4]) in out and " ".join(groups[8:]) in out
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))
    assert main(["contacts", "verify", "friend"]) == ExitCode.OK
    assert "friend is verified" in capsys.readouterr().out
    listed = _json(capsys, ["contacts", "list", "--json"])
    assert isinstance(listed, dict) and listed["contacts"][0]["verified"] is True


def test_contacts_rename_block_unblock_remove(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["contacts", "add", "friend", FRIEND_ADDRESS]) == ExitCode.OK
    assert main(["contacts", "rename", "friend", "pal"]) == ExitCode.OK
    assert main(["contacts", "block", "pal"]) == ExitCode.OK
    capsys.readouterr()
    assert main(["contacts", "list"]) == ExitCode.OK
    assert "pal" in (out := capsys.readouterr().out) and "blocked" in out
    assert main(["contacts", "unblock", "pal"]) == ExitCode.OK
    assert main(["contacts", "verify", "pal", "--yes"]) == ExitCode.OK
    assert main(["contacts", "remove", "pal"]) == ExitCode.OK
    capsys.readouterr()
    assert _json(capsys, ["contacts", "list", "--json"]) == {"contacts": []}


def test_changed_key_needs_replace(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["contacts", "add", "friend", FRIEND_ADDRESS]) == ExitCode.OK
    assert main(["contacts", "verify", "friend", "--yes"]) == ExitCode.OK
    other = format_address(Identity.from_seed(b"\x43" * 32).public_key, "ws://127.0.0.1:7711")
    capsys.readouterr()
    err = _error(capsys, ["contacts", "add", "friend", other], ExitCode.IDENTITY)
    assert "different key" in err and "--replace" in err
    assert main(["contacts", "add", "friend", other, "--replace"]) == ExitCode.OK
    capsys.readouterr()
    listed = _json(capsys, ["contacts", "list", "--json"])
    assert isinstance(listed, dict)
    assert listed["contacts"][0]["address"] == other
    assert listed["contacts"][0]["verified"] is False


@pytest.mark.parametrize(
    "argv",
    [
        ["contacts", "verify", "ghost", "--yes"],
        ["contacts", "remove", "ghost"],
        ["contacts", "block", "ghost"],
        ["contacts", "rename", "ghost", "spirit"],
    ],
)
def test_unknown_contact_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    assert "unknown contact: ghost" in _error(capsys, argv, ExitCode.USAGE)


def test_garbled_address_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    err = _error(capsys, ["contacts", "add", "x", FRIEND_ADDRESS[:-2]], ExitCode.USAGE)
    assert "garbled address" in err
