"""Two bare aiortc peers across tests/support/lossy_link.py's router, the baseline of the network
benchmarks (bench/network_cuts.py, bench/network_thin.py).

Each benchmark writes its own peer (what it sends, what it prints) as a coroutine run in a child
process inside a host, and uses this module for the rest: the offer and answer over one TCP
connection to bob (`exchange`), one JSON line per event stamped with the monotonic clock, which
every namespace shares (`say`), and the child processes seen from the benchmark (`BarePeer`,
`bare_call`). iceServers is always empty: host candidates only, no STUN server contacted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.lossy_link import BOB_IP, Link  # noqa: E402
from tests.support.services import stop_process  # noqa: E402


def say(**fields: Any) -> None:
    """One event of a peer, for the benchmark reading its output."""
    print(json.dumps({**fields, "at": time.monotonic()}), flush=True)


async def exchange(pc: Any, role: str, port: int) -> None:
    """The offer and answer between alice ("caller") and bob ("callee", who listens on `port`
    and says `ready` first), a line of JSON each way."""
    from aiortc import RTCSessionDescription

    if role == "callee":
        ready: asyncio.Future[tuple[Any, Any]] = asyncio.get_running_loop().create_future()
        server = await asyncio.start_server(lambda r, w: ready.set_result((r, w)), BOB_IP, port)
        say(ready=True)
        reader, writer = await ready
        offer = json.loads(await reader.readline())
        await pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        writer.write(json.dumps({"sdp": pc.localDescription.sdp}).encode() + b"\n")
        await writer.drain()
        server.close()
    else:
        reader, writer = await asyncio.open_connection(BOB_IP, port)
        await pc.setLocalDescription(await pc.createOffer())
        writer.write(json.dumps({"sdp": pc.localDescription.sdp}).encode() + b"\n")
        await writer.drain()
        answer = json.loads(await reader.readline())
        await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))


class BarePeer:
    """One side in a namespace: `script --bare ROLE`; `lines` collects what it says, as it comes."""

    def __init__(self, prefix: list[str], script: str, role: str) -> None:
        self.process = subprocess.Popen(
            [*prefix, sys.executable, script, "--bare", role],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=ROOT,
        )
        self.lines: list[dict[str, Any]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with contextlib.suppress(ValueError):
                self.lines.append(json.loads(line))

    def first(
        self, key: str, value: Any = None, after: float = 0.0, timeout: float = 30
    ) -> dict[str, Any] | None:
        """The first line with `key` (equal to `value` if given) said after `after`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if line["at"] > after and key in line and value in (None, line[key]):
                    return line
            time.sleep(0.05)
        return None

    def wait_for(self, key: str, value: Any = None, timeout: float = 30) -> dict[str, Any]:
        line = self.first(key, value, timeout=timeout)
        if line is None:
            raise RuntimeError(f"bare aiortc: no {key} {value} within {timeout} s")
        return line

    def stop(self) -> None:
        stop_process(self.process)


@contextlib.contextmanager
def bare_call(link: Link, script: str, settle_s: float) -> Iterator[tuple[BarePeer, BarePeer]]:
    """alice (caller) and bob (callee) connected, media flowing for `settle_s`."""
    callee = BarePeer(link.bob, script, "callee")
    caller = None
    try:
        callee.wait_for("ready")
        caller = BarePeer(link.alice, script, "caller")
        caller.wait_for("state", "connected")
        callee.wait_for("state", "connected")
        time.sleep(settle_s)
        yield caller, callee
    finally:
        for peer in (caller, callee):
            if peer is not None:
                peer.stop()
