"""Running the real `tcall` console script in a subprocess and reading its JSON events."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

TCALL = str(Path(sys.executable).with_name("tcall"))


def loopback_env(**extra: str) -> dict[str, str]:
    """The environment for a tcall process that must only use loopback addresses."""
    env = dict(os.environ)
    env["TCALL_ICE_ADDRESSES"] = "127.0.0.1"
    env.update(extra)
    return env


def run_tcall(*args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TCALL, *args], capture_output=True, text=True, timeout=timeout, env=loopback_env(**env)
    )


def events(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def candidates(sdp: str) -> list[str]:
    """The `a=candidate:` lines of an SDP."""
    return re.findall(r"^a=candidate:.*$", sdp, flags=re.MULTILINE)
