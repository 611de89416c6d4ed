"""Hostile numeric values for every bounded option of call, listen, view and serve are one usage
line (exit 2), never a traceback or a numpy memory error (issue #13); and the command table that
`tcall --help` prints without importing any command matches the commands themselves."""

from __future__ import annotations

import click
import pytest

from tcall.engine.errors import ExitCode
from tcall.tui.cli import COMMANDS, cli
from tests.support.cli import error_line

NUMBERS = ["1e308", "99999999999", "-1", "nan", "inf", "-inf", "", "abc", "0x10", "1,5"]
SIZES = [
    "100000x100000",
    "3841x2160",
    "0x0",
    "-1x-1",
    "nanxnan",
    "infxinf",
    "",
    "abc",
    "640",
    "1e3x1e3",
    "²x²",
    "640x480x2",
    "640 x 480",
]
OPTIONS = {
    ("call", "echo"): ["--duration", "--connect-timeout", "--ring-timeout", "--fps"],
    ("listen",): ["--duration", "--connect-timeout", "--ring-timeout", "--fps"],
    ("view", "pattern"): ["--frames", "--fps"],
    ("serve",): [
        "--port",
        "--hold-seconds",
        "--rate",
        "--burst",
        "--hold-memory",
        "--turn-ttl",
        "--coturn-port",
    ],
}
CASES = [
    [*command, option, value]
    for command, options in OPTIONS.items()
    for option in options
    for value in NUMBERS
]
CASES += [
    [*command, "--resolution", size]
    for command in [("call", "echo"), ("listen",)]
    for size in SIZES
]
CASES += [["view", "pattern", "--size", size] for size in [*SIZES, "2001x40", "120x1001"]]


@pytest.mark.parametrize("argv", CASES, ids=" ".join)
def test_a_hostile_value_is_one_usage_line(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    line = error_line(capsys, argv, ExitCode.USAGE)
    assert "Traceback" not in line


def test_the_help_table_names_each_command() -> None:
    with click.Context(cli) as ctx:
        for name, (_, short_help) in COMMANDS.items():
            command = cli.get_command(ctx, name)
            assert command is not None and command.name == name
            assert short_help.endswith(".") and len(short_help) < 60
