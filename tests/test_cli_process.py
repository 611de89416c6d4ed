"""`tcall --help` and `tcall --version` as real processes: light, without aiortc, PyAV or OpenCV
(issue #13). Timings are in README.md, measured; a test only checks what gets imported."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version

import pytest

from tcall.tui.cli import COMMANDS
from tests.support.cli import run_tcall

HEAVY = ["aiortc", "av", "cv2", "numpy", "textual"]
# Beside those, what a command that only reads a file must not pay for (40-60 ms each).
LIGHT = [*HEAVY, "asyncio", "aiohttp", "qrcode", "importlib.metadata"]
SCRIPT = """
import sys
from tcall.tui.cli import main
code = main(sys.argv[2:])
print(code, sorted(name for name in sys.argv[1].split(",") if name in sys.modules))
"""


def loaded_after(*args: str, watch: list[str] = HEAVY) -> str:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, ",".join(watch), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()[-1]


def test_help_lists_every_command_without_importing_them() -> None:
    assert loaded_after("--help") == "0 []"
    result = run_tcall("--help")
    assert result.returncode == 0, result.stderr
    listed = result.stdout.split("Commands:")[1]
    for name, (_, short_help) in COMMANDS.items():
        assert f"{name}  " in listed and short_help in listed


def test_version_prints_the_installed_version() -> None:
    assert loaded_after("--version") == "0 []"
    result = run_tcall("--version")
    assert (result.returncode, result.stdout) == (0, f"tcall {version('tcall')}\n")


@pytest.mark.parametrize(
    "args",
    [
        ("settings", "list"),
        ("settings", "get", "relay_url", "--json"),
        ("contacts", "list"),
        ("history",),
    ],
)
def test_commands_that_read_a_file_import_nothing_heavy(args: tuple[str, ...]) -> None:
    assert loaded_after(*args, watch=LIGHT) == "0 []"
