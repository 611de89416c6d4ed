"""ICE configuration: no server unless the user set one, and loopback candidates for same-host calls.

aioice leaves 127.0.0.1 out of its host candidates, so two tcall users on one machine (a real case: two
people on one SSH host) would never connect, and a host with only loopback would hang in "checking".
tcall replaces aioice's host-address enumeration with one that adds 127.0.0.1. TCALL_ICE_ADDRESSES
(comma-separated) pins the host addresses instead; tests use it to stay on loopback.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass

import aioice.ice
from aiortc import RTCConfiguration, RTCIceServer
from aiortc.rtcconfiguration import RTCIceTransportPolicy

ADDRESSES_ENV = "TCALL_ICE_ADDRESSES"
_aioice_host_addresses = aioice.ice.get_host_addresses


def host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    pinned = os.environ.get(ADDRESSES_ENV, "").strip()
    if pinned:
        wanted = [a.strip() for a in pinned.split(",") if a.strip()]
        return [
            a
            for a in wanted
            if (use_ipv4 and ipaddress.ip_address(a).version == 4)
            or (use_ipv6 and ipaddress.ip_address(a).version == 6)
        ]
    addresses = _aioice_host_addresses(use_ipv4=use_ipv4, use_ipv6=use_ipv6)
    if use_ipv4 and "127.0.0.1" not in addresses:
        addresses.append("127.0.0.1")
    return addresses


aioice.ice.get_host_addresses = host_addresses


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
