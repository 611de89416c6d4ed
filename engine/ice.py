"""ICE configuration: no server unless the user set one.

Loopback candidates for same-host calls (and TCALL_ICE_ADDRESSES) come from compat.aioice, which
holds tcall's hooks into aioice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aiortc import RTCConfiguration, RTCIceServer
from aiortc.rtcconfiguration import RTCIceTransportPolicy


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
        return RTCConfiguration(iceServers=servers, iceTransportPolicy=policy)
