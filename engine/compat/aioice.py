"""tcall's hooks into aioice's private names, each checked before use.

Host addresses: aioice leaves 127.0.0.1 out of its host candidates, so on a host whose only IPv4
address is loopback two tcall users (two people on one SSH host) would never connect and the call
would hang in "checking". aioice offers no option for this, so install() replaces its host-address
enumeration (`aioice.ice.get_host_addresses`) with host_addresses(), which adds 127.0.0.1 when there
is no other IPv4 address. TCALL_ICE_ADDRESSES (comma-separated) pins the host addresses instead;
tests use it to stay on loopback.

No server query from loopback: aioice asks the STUN server for a server-reflexive address from
every IPv4 host candidate, 127.0.0.1 included. From a loopback socket no answer can ever come back
(nothing outside the host is reachable from it), so gathering waited out aioice's whole 5 s limit on
each side of a call (about 11 s of a call's setup). install() replaces
`aioice.ice.server_reflexive_candidate` with one that refuses loopback candidates at once.

Checks crossing NATs: both agents check at once, and a check that reaches the other's router before
that side has sent anything is dropped (home routers drop unsolicited packets). RFC 8445 section
7.3.1.4 then has the agent whose check was lost send a new one as soon as the peer's check arrives
(the way is open now); aioice only does that for pairs not yet in progress and waits out its 500 ms
retransmission timer. install() wraps `Connection.check_incoming` so that an incoming check first
sends our own check of that pair again when it is still in progress (the same transaction: an
answer to either copy completes it). Across two NAT routers this took about 0.4 s off half of all
call setups (bench/nat.py), and the direct path won the race against the checks through TURN (which
no router drops) in all 10 direct calls measured, where TURN had won 1 call in 6.

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
from aioice import Connection, stun
from aioice.ice import CandidatePair

from tcall.engine.errors import CompatError

SUPPORTED = "~=0.13.0"  # the pin in pyproject.toml
ADDRESSES_ENV = "TCALL_ICE_ADDRESSES"
# stun.Transaction's request and address (name-mangled private attributes)
_TRANSACTION_REQUEST, _TRANSACTION_ADDR = "_Transaction__request", "_Transaction__addr"
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
    # Only when there is no other IPv4 address: two users on one host with a network reach each
    # other through it, and across NATs a loopback candidate cost about 0.5 s of every call's
    # setup (ICE waited for checks that can never succeed: bench/nat.py).
    ipv4 = [a for a in addresses if ipaddress.ip_address(a).version == 4]
    if use_ipv4 and not ipv4:
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
    incoming = getattr(Connection, "check_incoming", None)
    if not getattr(incoming, "tcall_hook", False):
        # The check list and a transaction's request are made in __init__: their attribute
        # names are in that code.
        transaction = stun.Transaction.__init__.__code__.co_names
        made_in_init = "_check_list" in Connection.__init__.__code__.co_names and all(
            name in transaction for name in (_TRANSACTION_REQUEST, _TRANSACTION_ADDR)
        )
        if (
            incoming is None
            or _parameters(incoming) != ["self", "message", "addr", "protocol"]
            or not made_in_init
        ):
            raise CompatError(
                "aioice",
                "no Connection.check_incoming(message, addr, protocol) and check list",
                SUPPORTED,
            )
        Connection.check_incoming = _check_again_at_once(incoming)  # type: ignore[method-assign]


def _check_again_at_once(check_incoming: Callable[..., None]) -> Callable[..., None]:
    def check_incoming_and_resend(
        connection: Connection, message: object, addr: tuple[str, int], protocol: object
    ) -> None:
        for pair in getattr(connection, "_check_list", ()):
            if (
                pair.protocol is protocol
                and pair.remote_addr == addr
                and pair.state is CandidatePair.State.IN_PROGRESS
            ):
                # Our check of this pair is still out: send its request again now (the same
                # transaction, so an answer to either copy completes it).
                for transaction in list(getattr(protocol, "transactions", {}).values()):
                    if getattr(transaction, _TRANSACTION_ADDR, None) == addr:
                        protocol.send_stun(getattr(transaction, _TRANSACTION_REQUEST), addr)
                break
        check_incoming(connection, message, addr, protocol)

    check_incoming_and_resend.tcall_hook = True  # type: ignore[attr-defined]
    return check_incoming_and_resend


def _parameters(function: object) -> list[str]:
    return list(inspect.signature(function).parameters) if callable(function) else []


def nominated_pair(connection: Connection, component: int = 1) -> CandidatePair | None:
    """The candidate pair ICE nominated for `component`, or None while there is none."""
    nominated = getattr(connection, "_nominated", None)
    if not isinstance(nominated, dict):
        raise CompatError("aioice", "Connection has no table of nominated pairs", SUPPORTED)
    pair: CandidatePair | None = nominated.get(component)
    return pair
