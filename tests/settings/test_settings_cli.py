"""`tcall settings get|set|list` run in-process through `tui.cli.main`."""

from __future__ import annotations

from pathlib import Path

import pytest

from tcall.engine.errors import ExitCode
from tcall.tui.cli import main
from tests.support.cli import error_line as _error
from tests.support.cli import json_output as _json


def test_settings_get_set_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["settings", "get", "who_can_call"]) == ExitCode.OK
    assert capsys.readouterr().out == "contacts\n"
    assert main(["settings", "set", "do_not_disturb", "22:00-07:00"]) == ExitCode.OK
    assert main(["settings", "set", "auto_answer_from", "a,b"]) == ExitCode.OK
    capsys.readouterr()
    values = _json(capsys, ["settings", "list", "--json"])
    assert isinstance(values, dict)
    assert values["do_not_disturb"] == "22:00-07:00" and values["auto_answer_from"] == ["a", "b"]
    assert main(["settings", "list"]) == ExitCode.OK
    assert "everyone | contacts | nobody" in capsys.readouterr().out


def test_settings_errors(capsys: pytest.CaptureFixture[str], tcall_home: Path) -> None:
    err = _error(capsys, ["settings", "set", "who_can_call", "friends"], ExitCode.USAGE)
    assert "who_can_call" in err and "everyone | contacts | nobody" in err
    assert "unknown setting: nope" in _error(capsys, ["settings", "get", "nope"], ExitCode.USAGE)
    (tcall_home / "config.toml").write_text("relay_url = [\n")
    assert "not valid TOML" in _error(capsys, ["id"], ExitCode.CONFIG)


def test_unknown_keys_are_warned_about(
    capsys: pytest.CaptureFixture[str], tcall_home: Path
) -> None:
    (tcall_home / "config.toml").write_text("mystery = 1\n")
    assert main(["settings", "set", "render", "ascii"]) == ExitCode.OK
    assert "unknown setting 'mystery'" in capsys.readouterr().err
    assert "mystery = 1" in (tcall_home / "config.toml").read_text()
