"""What the relay hands a signed-in client for ICE: its STUN and TURN URLs, and short-lived TURN
credentials by coturn's shared-secret scheme (the TURN REST API, coturn's `use-auth-secret` with
`static-auth-secret`).

The relay and coturn share one secret and nothing else. For each client the relay makes

    username   = "<expiry, unix time>:<opaque id>"
    credential = base64(HMAC-SHA1(secret, username))

and coturn, which knows the secret, recomputes the credential from the username and refuses it
once the expiry has passed. That is coturn's own construction (see coturn's README.turnserver,
"TURN REST API"), so it is built from the standard library's hmac as coturn defines it. The id is
random per link: coturn (and its log) sees neither the client's key nor its mailbox, and cannot
tie two sign-ins together. Nothing long-lived leaves the relay: a credential is worth `ttl`
seconds (one hour by default), and the relay sends fresh ones before they run out.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import urllib.parse
from dataclasses import dataclass, field

from tcall.engine.relay.protocol import (
    MAX_ICE_TTL,
    MAX_ICE_URLS,
    MIN_ICE_TTL,
    IceServer,
    check_ice_url,
    encode_ice,
)

DEFAULT_TTL = 3600
SEPARATOR = ":"  # coturn's default rest-api-separator


def rest_username(expiry: int, user: str) -> str:
    """The TURN REST username: when it stops working (unix time), then whose it is."""
    if SEPARATOR in user:
        raise ValueError(f"a TURN REST user id has no {SEPARATOR!r}")
    return f"{expiry}{SEPARATOR}{user}"


def rest_credential(secret: bytes, username: str) -> str:
    """The password coturn expects for `username`: base64 of HMAC-SHA1 keyed with the secret."""
    digest = hmac.new(secret, username.encode("ascii"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def credentials_safe(origin: str) -> bool:
    """Whether TURN credentials may go to a client that dialled `origin` (`relay_origin` form):
    over TLS (wss://), or to a loopback address, where they never cross a network in clear."""
    parts = urllib.parse.urlsplit(origin)
    if parts.scheme == "wss" or parts.hostname == "localhost":  # RFC 6761: always loopback
        return True
    try:
        return ipaddress.ip_address(parts.hostname or "").is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class IceOffer:
    """The relay's ICE servers: STUN URLs as they are, TURN URLs with credentials made from
    `secret` for each client, good for `ttl` seconds."""

    stun_urls: tuple[str, ...] = ()
    turn_urls: tuple[str, ...] = ()
    secret: bytes = field(default=b"", repr=False)
    ttl: int = DEFAULT_TTL

    def __post_init__(self) -> None:
        for what, urls in (("STUN", self.stun_urls), ("TURN", self.turn_urls)):
            if len(urls) > MAX_ICE_URLS:
                raise ValueError(f"at most {MAX_ICE_URLS} {what} URLs, not {len(urls)}")
        if not MIN_ICE_TTL <= self.ttl <= MAX_ICE_TTL:
            raise ValueError(f"a TURN credential lives {MIN_ICE_TTL} to {MAX_ICE_TTL} seconds")
        for url in self.stun_urls:
            if not check_ice_url(url).startswith("stun:"):
                raise ValueError(f"{url} is not a stun: URL")
        for url in self.turn_urls:
            if check_ice_url(url).startswith("stun:"):
                raise ValueError(f"{url} is not a turn: or turns: URL")
        if self.turn_urls and not self.secret:
            raise ValueError("TURN URLs need the secret coturn shares with the relay")
        encode_ice(*self.servers("0" * 16, 0))  # what clients would refuse fails here instead

    def servers(
        self, user: str, now: float, credentials: bool = True
    ) -> tuple[tuple[IceServer, ...], int | None]:
        """The servers for client `user` at unix time `now`, and the ttl of their credentials;
        with `credentials` false, the STUN servers alone."""
        servers: list[IceServer] = []
        ttl = None
        if self.stun_urls:
            servers.append(IceServer(self.stun_urls))
        if self.turn_urls and credentials:
            username = rest_username(int(now) + self.ttl, user)
            servers.append(
                IceServer(self.turn_urls, username, rest_credential(self.secret, username))
            )
            ttl = self.ttl
        return tuple(servers), ttl
