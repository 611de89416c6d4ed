"""`tcall settings get KEY --json`, as README promises: the value as JSON, typed."""

from __future__ import annotations

import pytest

from tcall.engine.errors import ExitCode
from tcall.tui.cli import main
from tests.support.cli import json_output


def test_get_json_prints_the_typed_value(capsys: pytest.CaptureFixture[str]) -> None:
    assert json_output(capsys, ["settings", "get", "history_retention_days", "--json"]) == 30
    assert json_output(capsys, ["settings", "get", "stun_servers", "--json"]) == []
    assert main(["settings", "set", "stun_servers", "stun:a:3478,stun:b:3478"]) == ExitCode.OK
    capsys.readouterr()
    assert json_output(capsys, ["settings", "get", "stun_servers", "--json"]) == [
        "stun:a:3478",
        "stun:b:3478",
    ]
