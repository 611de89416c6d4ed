"""Sessions: same-host calls over loopback, and no server contacted unless one is configured."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from tcall.engine.ice import IceSettings
from tests.support.sessions import candidates

ROOT = Path(__file__).resolve().parents[2]
TWO_PEERS = [sys.executable, "-m", "tests.support.two_peers"]  # run from ROOT


def test_two_peers_on_a_loopback_only_host_connect() -> None:
    # A private network namespace whose only interface is lo: aioice alone gathers no candidate here.
    env = {k: v for k, v in os.environ.items() if k != "TCALL_ICE_ADDRESSES"}
    result = subprocess.run(
        ["unshare", "-n", "sh", "-c", f"ip link set lo up && exec {shlex.join(TWO_PEERS)}"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert "connected" in outcome["states"]["a"]
    assert "connected" in outcome["states"]["b"]
    assert outcome["a_received"] >= 10 and outcome["b_received"] >= 10
    offered = candidates(outcome["offer"])
    assert offered and all(" 127.0.0.1 " in c and "typ host" in c for c in offered)


def test_no_servers_means_host_candidates_only() -> None:
    assert IceSettings().configuration().iceServers == []
    result = subprocess.run(
        TWO_PEERS,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "TCALL_ICE_ADDRESSES": "127.0.0.1"},
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    for sdp in (outcome["offer"], outcome["answer"]):
        found = candidates(sdp)
        assert found
        assert all("typ host" in c for c in found)
        assert not any("typ srflx" in c or "typ relay" in c for c in found)
    # max-bundle: video and audio share one ICE transport from the offer on (one gathering, one
    # TURN allocation), not one each until the answer drops the second: one port in every m-line.
    ports = re.findall(r"^m=\w+ (\d+) ", outcome["offer"], flags=re.MULTILINE)
    assert len(ports) == 2 and len(set(ports)) == 1
