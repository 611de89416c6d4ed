"""Call setup across NAT routers with 40 ms of round trip: tcall beside bare aiortc, in one run.

The network is tests/support/nat.py's: two homes behind NAT routers that drop unsolicited packets,
a public network holding the relay and coturn, and a delay line adding 20 ms to every packet the
public network sends towards a home (these kernels have no netem), so 40 ms of round trip between
the homes and 20 ms to the servers. One coturn (use-auth-secret) serves both sides:

- tcall: `tcall serve --turn-secret ... --stun ... --turn ...` (wss://, a test CA), and nothing set
  on alice or bob but `relay_url`: bob runs `tcall listen --auto-answer`, alice `tcall call bob`,
  and the figure is the summary's `setup_ms` (dial to the first remote frame, ringing included);
- bare aiortc: two plain aiortc peers configured by hand with the same STUN server and TURN
  credentials made from the same secret, each sending the same video and tone as tcall's; the offer and answer cross a tiny TCP rendezvous on the
  public network; the figure runs from making the caller's peer connection to its first decoded
  frame (the callee makes its own when the offer comes, as an app answering a call would).

Both get the same servers (STUN, and TURN over UDP or TCP). Routes: direct (both routers cone),
TURN over UDP (one symmetric router), TURN over TCP (one
home lets only TCP out: bare aiortc is given the TCP URL, tcall finds it by itself) and relay only.
Goals at 40 ms: direct at most 0.6 s, through TURN at most 1.0 s, never slower than bare aiortc.

    sudo python bench/nat.py [--runs 5] [--routes direct,turn-udp,turn-tcp,relay-only]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fractions
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.support: the same network the tests build

from tests.support.nat import PUBLIC_IP, nat_network  # noqa: E402
from tests.support.tls import make_pki  # noqa: E402

TCALL = str(Path(sys.executable).with_name("tcall"))
TURN_PORT = 3478
RENDEZVOUS_PORT = 7000
ROUTES = {  # name: (routers, tcall's relay_only, bare aiortc's TURN transport or None)
    "direct": (["cone", "cone"], False, "udp"),
    "turn-udp": (["cone", "symmetric"], False, "udp"),
    "turn-tcp": (["cone", "no_udp"], False, "tcp"),
    "relay-only": (["cone", "cone"], True, "udp"),
}
MEDIA = ["--video", "pattern", "--audio", "sine"]


# --- bare aiortc, one side, run inside a home ---------------------------------------------------


async def bare_peer(role: str, ice: dict[str, Any]) -> None:
    from aiortc import (
        MediaStreamTrack,
        RTCConfiguration,
        RTCIceServer,
        RTCPeerConnection,
        RTCSessionDescription,
        VideoStreamTrack,
    )
    from aiortc.mediastreams import MediaStreamError
    from aiortc.rtcconfiguration import RTCIceTransportPolicy
    from av import AudioFrame, VideoFrame

    from tcall.engine.media.audio import PacedAudioSource, sine_blocks
    from tcall.engine.media.video import PatternSource

    class Sine(MediaStreamTrack):
        # The same 440 Hz tone in 20 ms blocks that tcall's `--audio sine` sends.
        kind = "audio"

        def __init__(self) -> None:
            super().__init__()
            self.source = PacedAudioSource("sine", sine_blocks())
            self.samples = 0

        async def recv(self) -> AudioFrame:
            block = await self.source.next_block()
            frame = AudioFrame.from_ndarray(block.reshape(1, -1), format="s16", layout="mono")
            frame.sample_rate, frame.time_base = 48000, fractions.Fraction(1, 48000)
            frame.pts, self.samples = self.samples, self.samples + len(block)
            return frame

    class Pattern(VideoStreamTrack):
        def __init__(self) -> None:
            super().__init__()
            self.source = PatternSource(640, 480, 30)

        async def recv(self) -> VideoFrame:
            pixels = await self.source.next_frame()
            pts, time_base = await self.next_timestamp()
            frame = VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts, frame.time_base = pts, time_base
            return frame

    servers = [RTCIceServer(urls=ice["stun"])] if ice.get("stun") else []
    if ice.get("turn"):
        servers.append(RTCIceServer(urls=ice["turn"], username=ice["user"], credential=ice["pass"]))
    policy = RTCIceTransportPolicy.RELAY if ice.get("relay_only") else RTCIceTransportPolicy.ALL
    first: asyncio.Future[float] = asyncio.get_running_loop().create_future()

    def peer_connection() -> RTCPeerConnection:
        # Made when the call starts (caller) or the offer comes (callee), as an app would.
        pc = RTCPeerConnection(RTCConfiguration(iceServers=servers, iceTransportPolicy=policy))
        pc.addTrack(Pattern())
        pc.addTrack(Sine())  # a video call, with sound, as tcall's

        @pc.on("track")
        def on_track(track: Any) -> None:
            async def read() -> None:
                with contextlib.suppress(MediaStreamError):
                    while True:  # audio is drained, as a player would; video's first frame counts
                        await track.recv()
                        if track.kind == "video" and not first.done():
                            first.set_result(time.monotonic())

            asyncio.ensure_future(read())

        return pc

    reader, writer = await asyncio.open_connection(PUBLIC_IP, RENDEZVOUS_PORT)
    if role == "caller":
        started = time.monotonic()
        pc = peer_connection()
        await pc.setLocalDescription(await pc.createOffer())
        writer.write(json.dumps({"sdp": pc.localDescription.sdp}).encode() + b"\n")
        await writer.drain()
        answer = json.loads(await reader.readline())
        await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
        shown = await asyncio.wait_for(first, 30)
        print(json.dumps({"setup_ms": round((shown - started) * 1000, 1)}), flush=True)
        writer.write(b'{"done": true}\n')
        await writer.drain()
    else:
        offer = json.loads(await reader.readline())
        pc = peer_connection()
        await pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        writer.write(json.dumps({"sdp": pc.localDescription.sdp}).encode() + b"\n")
        await writer.drain()
        await reader.readline()  # the caller saw a frame
    await pc.close()


def rendezvous() -> None:
    """Pass each line between the first two connections (run on the public network)."""
    server = socket.create_server((PUBLIC_IP, RENDEZVOUS_PORT))
    print("ready", flush=True)
    while True:
        a, _ = server.accept()
        b, _ = server.accept()
        pump_pair(a, b)


def pump_pair(a: socket.socket, b: socket.socket) -> None:
    import selectors

    selector = selectors.DefaultSelector()
    selector.register(a, selectors.EVENT_READ, b)
    selector.register(b, selectors.EVENT_READ, a)
    open_ends = 2
    while open_ends:
        for key, _ in selector.select():
            data = key.fileobj.recv(65536)  # type: ignore[union-attr]
            if not data:
                selector.unregister(key.fileobj)
                open_ends -= 1
                continue
            key.data.sendall(data)
    a.close()
    b.close()


# --- the driver -------------------------------------------------------------------------------


def rest_credentials(secret: str) -> tuple[str, str]:
    from tcall.engine.server.turn_credentials import rest_credential, rest_username

    username = rest_username(int(time.time()) + 3600, secrets.token_hex(8))
    return username, rest_credential(secret.encode(), username)


def start_coturn(prefix: list[str], secret: str, folder: Path) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [
            *prefix,
            "turnserver",
            "-n",
            f"--listening-ip={PUBLIC_IP}",
            f"--relay-ip={PUBLIC_IP}",
            f"--listening-port={TURN_PORT}",
            "--use-auth-secret",
            f"--static-auth-secret={secret}",
            "--userdb=:memory:",
            "--realm=tcall.bench",
            "--no-tls",
            "--no-dtls",
            "--no-cli",
            "--min-port=50000",
            "--max-port=50999",
            "--denied-peer-ip=198.51.100.0-198.51.100.255",  # the homes' private LANs
            f"--pidfile={folder / 'turn.pid'}",
            "--log-file=stdout",
            "--no-stdout-log",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)
    return process


def tcall_env(home: Path, ca: Path) -> dict[str, str]:
    return {
        **os.environ,
        "TCALL_HOME": str(home),
        "TCALL_ICE_ADDRESSES": "",
        "TCALL_RELAY_CA": str(ca),
    }


def tcall(prefix: list[str], env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [*prefix, TCALL, *args], env=env, capture_output=True, text=True, check=True, timeout=60
    )
    return done.stdout


def measure_route(name: str, runs: int, delay_ms: float) -> dict[str, list[float]]:
    kinds, relay_only, bare_transport = ROUTES[name]
    tmp = Path(tempfile.mkdtemp())
    secret = secrets.token_hex(16)
    (tmp / "secret").write_text(secret)
    (tmp / "secret").chmod(0o600)
    pki = make_pki(tmp / "pki", addresses=(PUBLIC_IP,))
    figures: dict[str, list[float]] = {"tcall": [], "aiortc": [], "routes": []}  # type: ignore[dict-item]
    with nat_network(kinds, delay_ms=delay_ms) as net:
        coturn = start_coturn(net.public, secret, tmp)
        where = f"{PUBLIC_IP}:{TURN_PORT}"
        relay = subprocess.Popen(
            [
                *net.public,
                TCALL,
                "serve",
                "--host",
                PUBLIC_IP,
                "--port",
                "7711",
                "--cert",
                str(pki.cert),
                "--key",
                str(pki.key),
                "--stun",
                f"stun:{where}",
                "--turn",
                f"turn:{where}?transport=udp",
                "--turn",
                f"turn:{where}?transport=tcp",
                "--turn-secret",
                str(tmp / "secret"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert relay.stdout is not None and "listening" in relay.stdout.readline()
        meet = subprocess.Popen(
            [*net.public, sys.executable, str(Path(__file__)), "--rendezvous"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert meet.stdout is not None and meet.stdout.readline().strip() == "ready"
        try:
            homes = [tmp / "alice", tmp / "bob"]
            address = {}
            for home in homes:
                env = tcall_env(home, pki.ca)
                tcall([], env, "settings", "set", "relay_url", f"wss://{PUBLIC_IP}:7711")
                tcall([], env, "settings", "set", "relay_only", "on" if relay_only else "off")
                tcall([], env, "settings", "set", "answer_with_camera", "on")  # video both ways
                address[home] = json.loads(tcall([], env, "id", "--json"))["address"]
            tcall([], tcall_env(homes[0], pki.ca), "contacts", "add", "bob", address[homes[1]])
            tcall([], tcall_env(homes[1], pki.ca), "contacts", "add", "alice", address[homes[0]])
            for _ in range(runs):
                setup, route = tcall_call(net.homes, homes, pki.ca)
                figures["tcall"].append(setup)
                figures["routes"].append(route)  # type: ignore[arg-type]
                figures["aiortc"].append(bare_call(net.homes, secret, bare_transport, relay_only))
        finally:
            for process in (meet, relay, coturn):
                process.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(10)
    return figures


def tcall_call(prefixes: list[list[str]], homes: list[Path], ca: Path) -> tuple[float, str]:
    listen = subprocess.Popen(
        [*prefixes[1], TCALL, "listen", "--auto-answer", "--once", "--json", *MEDIA],
        env=tcall_env(homes[1], ca),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert listen.stdout is not None
    while '"online"' not in listen.stdout.readline():
        pass
    out = tcall(
        prefixes[0], tcall_env(homes[0], ca), "call", "bob", "--duration", "1", "--json", *MEDIA
    )
    listen.wait(30)
    summary = json.loads(out.strip().splitlines()[-1])
    if summary.get("setup_ms") is None:
        raise SystemExit(f"tcall: no frame came: {summary}")
    return float(summary["setup_ms"]), str(summary.get("route"))


def bare_call(
    prefixes: list[list[str]], secret: str, transport: str | None, relay_only: bool
) -> float:
    ice: dict[str, Any] = {"stun": f"stun:{PUBLIC_IP}:{TURN_PORT}", "relay_only": relay_only}
    if transport is not None:
        user, password = rest_credentials(secret)
        ice |= {"turn": f"turn:{PUBLIC_IP}:{TURN_PORT}?transport={transport}", "user": user}
        ice["pass"] = password
    argv = [sys.executable, str(Path(__file__)), "--bare"]
    callee = subprocess.Popen(
        [*prefixes[1], *argv, "callee", json.dumps(ice)], stdout=subprocess.DEVNULL, cwd=ROOT
    )
    time.sleep(1.5)  # its imports; its connection waits at the rendezvous for the caller's
    caller = subprocess.run(
        [*prefixes[0], *argv, "caller", json.dumps(ice)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    callee.wait(30)
    if caller.returncode != 0:
        raise SystemExit(f"bare aiortc failed: {caller.stderr[-800:]}")
    return float(json.loads(caller.stdout.strip().splitlines()[-1])["setup_ms"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--routes", default=",".join(ROUTES))
    parser.add_argument("--delay-ms", type=float, default=20.0, help="one way, home to home")
    args = parser.parse_args()
    print(
        f"setup time, dial to first remote frame, ms; {2 * args.delay_ms:g} ms of round trip "
        f"between the homes; median (min-max) of {args.runs} runs"
    )
    for name in args.routes.split(","):
        figures = measure_route(name, args.runs, args.delay_ms)
        ours, bare = figures["tcall"], figures["aiortc"]
        ratio = statistics.median(ours) / statistics.median(bare)
        print(
            f"{name:11} tcall {statistics.median(ours):6.0f} ({min(ours):.0f}-{max(ours):.0f})"
            f"  bare aiortc {statistics.median(bare):6.0f} ({min(bare):.0f}-{max(bare):.0f})"
            f"  ratio {ratio:.2f}  tcall's routes {sorted(set(figures['routes']))}",  # type: ignore[arg-type]
            flush=True,
        )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--bare"]:
        asyncio.run(bare_peer(sys.argv[2], json.loads(sys.argv[3])))
    elif sys.argv[1:2] == ["--rendezvous"]:
        rendezvous()
    else:
        main()
