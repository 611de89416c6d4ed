"""Real `tcall` processes writing one home at once lose nothing (issue #12, item 12), and a
read-only home is a one-line exit 12 (item 14).

Before the lock, 20 parallel `contacts add` kept 8, 10 parallel `settings set` kept 6, and two
first-run `tcall id` could print two different keys.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tcall.engine.address import format_address
from tcall.engine.errors import ExitCode
from tcall.engine.identity import Identity
from tests.support.cli import TCALL

SETTINGS = {
    "video_calling": "off",
    "auto_answer": "contacts",
    "who_can_call": "nobody",
    "silence_unknown": "off",
    "do_not_disturb": "on",
    "answer_with_camera": "on",
    "ask_before_video": "off",
    "relay_only": "on",
    "history_retention_days": 7,
    "presence": "nobody",
}


def _together(home: Path, commands: list[list[str]]) -> list[subprocess.CompletedProcess[str]]:
    """Start every command at once as a `tcall` process in `home`; wait for all."""
    env = {**os.environ, "TCALL_HOME": str(home)}
    running = [
        subprocess.Popen(
            [TCALL, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for args in commands
    ]
    done = []
    for args, process in zip(commands, running, strict=True):
        out, err = process.communicate(timeout=120)
        done.append(subprocess.CompletedProcess(args, process.returncode, out, err))
    return done


def _ok(results: list[subprocess.CompletedProcess[str]]) -> None:
    for result in results:
        assert result.returncode == ExitCode.OK, f"{result.args}: {result.stderr}"


def test_twenty_parallel_contacts_add_are_all_kept(tcall_home: Path) -> None:
    names = [f"friend{i}" for i in range(20)]
    adds = [
        ["contacts", "add", n, format_address(Identity.generate().public_key, "")] for n in names
    ]
    _ok(_together(tcall_home, adds))
    listed = _together(tcall_home, [["contacts", "list", "--json"]])[0]
    assert sorted(c["name"] for c in json.loads(listed.stdout)["contacts"]) == sorted(names)


def test_ten_parallel_settings_set_are_all_kept(tcall_home: Path) -> None:
    _ok(_together(tcall_home, [["settings", "set", k, str(v)] for k, v in SETTINGS.items()]))
    listed = _together(tcall_home, [["settings", "list", "--json"]])[0]
    values = json.loads(listed.stdout)
    assert {key: values[key] for key in SETTINGS} == SETTINGS


@pytest.mark.parametrize("round_", range(5))  # before the fix, about 1 round in 5 disagreed
def test_two_first_run_ids_print_the_same_key(tmp_path: Path, round_: int) -> None:
    home = tmp_path / f"fresh{round_}"
    results = _together(home, [["id", "--json"], ["id", "--json"]])
    _ok(results)
    first, second = (json.loads(r.stdout)["address"] for r in results)
    assert first == second
    assert Identity.from_seed((home / "identity.key").read_bytes()).fingerprint in results[0].stdout


def _read_only(home: Path) -> list[str]:
    """A prefix that runs a command with `home` read-only: as root, whom modes do not stop, a
    read-only bind mount in a private mount namespace; otherwise mode 0500."""
    if os.geteuid() != 0:
        home.chmod(0o500)
        return []
    script = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"'
    return ["unshare", "--mount", "sh", "-c", script, str(home)]


@pytest.mark.parametrize(
    "args",
    [
        ["id"],
        [
            "contacts",
            "add",
            "friend",
            format_address(Identity.from_seed(b"\x42" * 32).public_key, ""),
        ],
        ["settings", "set", "presence", "nobody"],
    ],
)
def test_a_read_only_home_is_one_line_and_exit_12(tcall_home: Path, args: list[str]) -> None:
    env = {**os.environ, "TCALL_HOME": str(tcall_home)}
    result = subprocess.run(
        [*_read_only(tcall_home), TCALL, *args], env=env, capture_output=True, text=True, timeout=60
    )
    tcall_home.chmod(0o700)
    assert result.returncode == ExitCode.CONFIG, result.stderr
    assert result.stderr.startswith("tcall: error: ") and result.stderr.count("\n") == 1
    assert str(tcall_home) in result.stderr
    assert "Read-only file system" in result.stderr or "Permission denied" in result.stderr
    assert list(tcall_home.iterdir()) == []
