"""tcall's hooks into aioice's private names, each checked before use.

Host addresses: aioice leaves 127.0.0.1 out of its host candidates, so two tcall users on one machine
(a real case: two people on one SSH host) would never connect, and a host with only loopback would hang
in "checking". aioice offers no option for this, so install() replaces its host-address enumeration
(`aioice.ice.get_host_addresses`) with host_addresses(), which adds 127.0.0.1. TCALL_ICE_ADDRESSES
(comma-separated) pins the host addresses instead; tests use it to stay on loopback.

No server query from loopback: aioice asks the STUN server for a server-reflexive address from
every IPv4 host candidate, 127.0.0.1 included. From a loopback socket no answer can ever come back
(nothing outside the host is reachable from it), so gathering waited out aioice's whole 5 s limit on
each side of a call (about 11 s of a call's setup). install() replaces
`aioice.ice.server_reflexive_candidate` with one that refuses loopback candidates at once.

Nominated pair: aiortc reports no candidate-pair stats, so nominated_pair() reads the pair ICE chose
from the Connection's private `_nominated` table.
"""

from __future__ import annotations

import inspect
import ipaddress
import os
from collections.abc import Awaitable, Callable
from typing import Any

import aioice.ice
from aioice import Connection
from aioice.ice import CandidatePair

from tcall.engine.errors import CompatError

SUPPORTED = "~=0.13.0"  # the pin in pyproject.toml
ADDRESSES_ENV = "TCALL_ICE_ADDRESSES"

_aioice_host_addresses: Callable[..., list[str]] | None = None
_aioice_server_reflexive: Callable[..., Awaitable[Any]] | None = None


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
    assert _aioice_host_addresses is not None, "install() first"
    addresses = _aioice_host_addresses(use_ipv4=use_ipv4, use_ipv6=use_ipv6)
    if use_ipv4 and "127.0.0.1" not in addresses:
        addresses.append("127.0.0.1")
    return addresses


async def server_reflexive_candidate(protocol: Any, stun_server: tuple[str, int]) -> Any:
    """aioice's STUN query for a server-reflexive candidate, except from a loopback address."""
    if ipaddress.ip_address(protocol.local_candidate.host).is_loopback:
        raise ConnectionError("no STUN query from a loopback address: no answer can come back")
    assert _aioice_server_reflexive is not None, "install() first"
    return await _aioice_server_reflexive(protocol, stun_server)


def install() -> None:
    """Make aioice gather its host candidates through host_addresses() and its server-reflexive
    ones through server_reflexive_candidate(); safe to call again."""
    global _aioice_host_addresses, _aioice_server_reflexive
    current = getattr(aioice.ice, "get_host_addresses", None)
    if current is not host_addresses:
        if _parameters(current) != ["use_ipv4", "use_ipv6"]:
            raise CompatError(
                "aioice", "no get_host_addresses(use_ipv4, use_ipv6) in aioice.ice", SUPPORTED
            )
        _aioice_host_addresses = current
        aioice.ice.get_host_addresses = host_addresses
    query = getattr(aioice.ice, "server_reflexive_candidate", None)
    if query is not server_reflexive_candidate:
        if _parameters(query) != ["protocol", "stun_server"]:
            raise CompatError(
                "aioice",
                "no server_reflexive_candidate(protocol, stun_server) in aioice.ice",
                SUPPORTED,
            )
        _aioice_server_reflexive = query
        aioice.ice.server_reflexive_candidate = server_reflexive_candidate


def _parameters(function: object) -> list[str]:
    return list(inspect.signature(function).parameters) if callable(function) else []


def nominated_pair(connection: Connection, component: int = 1) -> CandidatePair | None:
    """The candidate pair ICE nominated for `component`, or None while there is none."""
    nominated = getattr(connection, "_nominated", None)
    if not isinstance(nominated, dict):
        raise CompatError("aioice", "Connection has no table of nominated pairs", SUPPORTED)
    pair: CandidatePair | None = nominated.get(component)
    return pair
