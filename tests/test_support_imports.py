"""Test folders share helpers only through tests/support: a test folder imports from tests.support
or from itself, never from another test folder, and tests/support imports no test folder."""

from __future__ import annotations

import re
from pathlib import Path

TESTS = Path(__file__).parent
# Every import of a tests package, at any depth (a regex, not an AST walk: 10 times faster, and an
# import written inside a string, as a script a test runs, counts too).
IMPORT = re.compile(r"^\s*(?:(?:from|import)\s+tests\.(\w+)|from\s+tests\s+import\s+(\w+))", re.M)


def test_folders_import_helpers_only_from_support_or_themselves() -> None:
    crossing = []
    for path in sorted(TESTS.rglob("*.py")):
        folder = path.relative_to(TESTS).parts[0] if path.parent != TESTS else None
        for dotted, listed in IMPORT.findall(path.read_text()):
            imported = dotted or listed
            if imported not in ("support", folder):
                crossing.append(f"{path.relative_to(TESTS)}: tests.{imported}")
    assert crossing == []


def test_the_check_sees_a_crossing_import() -> None:
    found = IMPORT.findall("import os\n    from tests.calls.conftest import people\n")
    assert found == [("calls", "")]
    assert IMPORT.findall("from tests import privacy\n") == [("", "privacy")]
