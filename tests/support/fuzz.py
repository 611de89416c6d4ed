"""How hard the property tests try.

CI (`CI=true`, as `.ci/run` runs) and `TCALL_FUZZ=full` run every example a test asks for; a
developer's loop runs a tenth of them (at least 10), so `pytest -m unit` stays under 10 s. The
examples a test runs are the same kind either way, only fewer.
"""

from __future__ import annotations

import os

FULL = os.environ.get("CI") == "true" or os.environ.get("TCALL_FUZZ") == "full"


def examples(count: int) -> int:
    return count if FULL else max(10, count // 10)
