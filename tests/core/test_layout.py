"""The layers as files: everything installs under `tcall`, and private names of aiortc, aioice and
Textual appear only in the compat modules."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = {"engine": "tcall.engine", "tui": "tcall.tui"}
# Names from inside aiortc, aioice and Textual that tcall relies on (see engine/compat, tui/compat).
PRIVATE = re.compile(
    r"_RTCRtpReceiver__|\._nominated\b|\._connection\b|\._compositor\b|\._driver\b"
    r"|_writer_thread|\._origin\b|\._packets\b|\._data\b|\b_segments\b|\b_render_cache\b"
    r"|get_host_addresses|rtcrtpsender\.get_encoder"
)


def test_every_package_folder_is_installed_under_tcall() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert config["package-dir"] == {name: top for top, name in SOURCES.items()}
    folders = {
        f"{SOURCES[init.relative_to(ROOT).parts[0]]}"
        + "".join(f".{part}" for part in init.parent.relative_to(ROOT).parts[1:])
        for top in SOURCES
        for init in (ROOT / top).rglob("__init__.py")
    }
    assert set(config["packages"]) == folders


def test_nothing_imports_the_source_folders_by_their_bare_names() -> None:
    # Also inside strings: a script a test or bench runs with `python -c`.
    bare = re.compile(r"(^\s*|[\"';]\s*)(from|import)\s+(engine|tui)\b", re.M)
    for path in [
        *ROOT.glob("engine/**/*.py"),
        *ROOT.glob("tui/**/*.py"),
        *ROOT.glob("tests/**/*.py"),
        *ROOT.glob("bench/*.py"),
    ]:
        assert not bare.search(path.read_text()), path


def test_private_names_of_libraries_live_only_in_compat() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}: {match.group(0)}"
        for top in SOURCES
        for path in (ROOT / top).rglob("*.py")
        if "compat" not in path.parts
        for match in PRIVATE.finditer(path.read_text())
    ]
    assert offenders == []
