"""Test folders share helpers only through tests/support: a test folder imports from tests.support
or from itself, never from another test folder, and tests/support imports no test folder."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).parent


def test_folders_import_helpers_only_from_support_or_themselves() -> None:
    crossing = []
    for path in sorted(TESTS.rglob("*.py")):
        folder = path.relative_to(TESTS).parts[0] if path.parent != TESTS else None
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            for name in names:
                parts = name.split(".")
                if parts[0] == "tests" and len(parts) > 1 and parts[1] not in ("support", folder):
                    crossing.append(f"{path.relative_to(TESTS)}: {name}")
    assert crossing == []
