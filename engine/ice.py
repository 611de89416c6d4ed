"""ICE configuration: no server unless the user set one or the user's own relay hands them out.

Loopback candidates for same-host calls (and TCALL_ICE_ADDRESSES) come from compat.aioice, which
holds tcall's hooks into aioice.

aioice uses one TURN server per call. A relay may offer TURN over UDP and over TCP or TLS; over UDP
is better (no head-of-line blocking), but some networks let only TCP out. `choose_turn` asks the
UDP server for a STUN binding first (under a second, at most once in five minutes per server, and
the Phone asks as soon as the relay hands the servers out, so a call seldom waits for it) and keeps
the UDP URL only if it answered. A STUN server that does not answer over UDP is left out (aioice
would wait 5 s for it on every call).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

from aioice import stun
from aiortc import RTCConfiguration, RTCIceServer
from aiortc.rtcconfiguration import RTCBundlePolicy, RTCIceTransportPolicy
from aiortc.rtcicetransport import parse_stun_turn_uri

Turn = tuple[str, str, str]  # (url, username, credential)
PROBE_TIMEOUT_S = 0.4  # per try; two tries
PROBE_FOR_S = 300.0  # how long an answer (or its absence) is believed
_probed: dict[tuple[str, int], tuple[float, bool]] = {}


@dataclass(frozen=True)
class IceSettings:
    """The only servers tcall contacts; both lists are empty unless the user configured them."""

    stun_servers: Sequence[str] = ()
    turn_servers: Sequence[tuple[str, str, str]] = ()  # (url, username, credential)
    relay_only: bool = False

    def configuration(self) -> RTCConfiguration:
        servers = [RTCIceServer(urls=url) for url in self.stun_servers]
        servers += [
            RTCIceServer(urls=url, username=user, credential=secret)
            for url, user, secret in self.turn_servers
        ]
        policy = RTCIceTransportPolicy.RELAY if self.relay_only else RTCIceTransportPolicy.ALL
        # iceServers is always passed explicitly: aiortc's default is a public Google STUN server.
        # max-bundle: audio and video share one ICE transport from the start, so a call gathers
        # once (one TURN allocation, not two) rather than dropping the second after the answer.
        return RTCConfiguration(
            iceServers=servers, iceTransportPolicy=policy, bundlePolicy=RTCBundlePolicy.MAX_BUNDLE
        )


async def choose_turn(turn: Sequence[Turn]) -> list[Turn]:
    """`turn` in the order aioice should try them: when there is a UDP URL and a TCP or TLS one,
    the UDP one only if its server answers over UDP from here, else the others."""
    udp = [t for t in turn if _transport(t[0]) == "udp"]
    other = [t for t in turn if _transport(t[0]) != "udp"]
    if not udp or not other:
        return list(turn)
    parsed = parse_stun_turn_uri(udp[0][0])
    if await udp_answers(str(parsed["host"]), int(parsed["port"])):
        return udp + other
    return other + udp


async def stun_answers(url: str) -> bool:
    """Does the STUN server at `url` (stun:HOST[:PORT]) answer over UDP from here?"""
    parsed = parse_stun_turn_uri(url)
    return await udp_answers(str(parsed["host"]), int(parsed["port"]))


def _transport(url: str) -> str:
    return "tls" if url.startswith("turns:") else str(parse_stun_turn_uri(url)["transport"])


async def udp_answers(host: str, port: int) -> bool:
    """Does the STUN (or TURN) server at host:port answer a binding request over UDP from here?"""
    now = time.monotonic()
    known = _probed.get((host, port))
    if known is not None and now - known[0] < PROBE_FOR_S:
        return known[1]
    answered = await _probe(host, port)
    _probed[(host, port)] = (now, answered)
    return answered


async def _probe(host: str, port: int) -> bool:
    request = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[None] = loop.create_future()

    class Probe(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: object) -> None:
            try:
                reply = stun.parse_message(data)
            except ValueError:
                return
            if reply.transaction_id == request.transaction_id and not answer.done():
                answer.set_result(None)

    try:
        transport, _ = await loop.create_datagram_endpoint(Probe, remote_addr=(host, port))
    except OSError:
        return False
    try:
        for _ in range(2):
            transport.sendto(bytes(request))
            try:
                await asyncio.wait_for(asyncio.shield(answer), PROBE_TIMEOUT_S)
                return True
            except TimeoutError:
                continue
        return False
    finally:
        transport.close()
