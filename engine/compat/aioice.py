"""tcall's hooks into aioice's private names, each checked before use.

Host addresses: aioice leaves 127.0.0.1 out of its host candidates, so two tcall users on one machine
(a real case: two people on one SSH host) would never connect, and a host with only loopback would hang
in "checking". aioice offers no option for this, so install() replaces its host-address enumeration
(`aioice.ice.get_host_addresses`) with host_addresses(), which adds 127.0.0.1. TCALL_ICE_ADDRESSES
(comma-separated) pins the host addresses instead; tests use it to stay on loopback.

Nominated pair: aiortc reports no candidate-pair stats, so nominated_pair() reads the pair ICE chose
from the Connection's private `_nominated` table.
"""

from __future__ import annotations

import inspect
import ipaddress
import os
from collections.abc import Callable

import aioice.ice
from aioice import Connection
from aioice.ice import CandidatePair

from tcall.engine.errors import CompatError

SUPPORTED = "~=0.13.0"  # the pin in pyproject.toml
ADDRESSES_ENV = "TCALL_ICE_ADDRESSES"

_aioice_host_addresses: Callable[..., list[str]] | None = None


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


def install() -> None:
    """Make aioice gather its host candidates through host_addresses(); safe to call again."""
    global _aioice_host_addresses
    current = getattr(aioice.ice, "get_host_addresses", None)
    if current is host_addresses:
        return
    parameters = list(inspect.signature(current).parameters) if callable(current) else []
    if parameters != ["use_ipv4", "use_ipv6"]:
        raise CompatError(
            "aioice", "no get_host_addresses(use_ipv4, use_ipv6) in aioice.ice", SUPPORTED
        )
    _aioice_host_addresses = current
    aioice.ice.get_host_addresses = host_addresses


def nominated_pair(connection: Connection, component: int = 1) -> CandidatePair | None:
    """The candidate pair ICE nominated for `component`, or None while there is none."""
    nominated = getattr(connection, "_nominated", None)
    if not isinstance(nominated, dict):
        raise CompatError("aioice", "Connection has no table of nominated pairs", SUPPORTED)
    pair: CandidatePair | None = nominated.get(component)
    return pair
