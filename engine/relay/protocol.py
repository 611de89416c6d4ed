"""The relay's own wire format, sans-I/O: frames in, events and frames out, no sockets and no clock.

Every relay message is one binary WebSocket message. Its first byte says what it is:

    kind  name       direction  body
    0x01  CHALLENGE  relay->us  version (1 byte, = 2) | challenge (32 random bytes)
    0x02  AUTH       us->relay  Ed25519 public key (32) | signature (64)
    0x03  READY      relay->us  our mailbox (16)
    0x04  SEND       us->relay  recipient mailbox (16) | payload (1 byte or more)
    0x05  DELIVER    relay->us  payload (1 byte or more)
    0x06  ERROR      relay->us  error code (1) | reason, UTF-8 (at most 200 bytes)
    0x07  ICE        relay->us  the ICE servers to use: JSON, printable ASCII (at most 4096 bytes)

The relay speaks first with a CHALLENGE. The client signs, with its identity key,

    AUTH_CONTEXT ("tcall-relay-auth-v2") | length of origin (1 byte) | origin (ASCII) | challenge

and sends AUTH. The domain prefix keeps this signature from meaning anything anywhere else; the
origin binds it to the relay the client meant: `relay_origin` of the URL it dialled,
`scheme://host:port` (lower case, the port always written, IPv6 in brackets). The relay checks it
against its own origin, taken from the Host header of the opening handshake only when that names
the relay itself (see engine/server/server.py), or from its `--public-url`. So a relay that passes
another relay's challenge on to its own clients (a contact's relay, say) gets a signature the other
relay refuses: it cannot sign in there as them. Version 1 signed the challenge alone; a version 2
client refuses a version 1 relay, and the other way round. Only after a good AUTH does the relay answer READY and accept SEND; a DELIVER carries the
payload alone, so the relay never tells a recipient who sent it. An ERROR is always the relay's last
frame: the link closes after it. A whole frame is at most `MAX_FRAME` bytes.

A mailbox is the BLAKE2b-128 hash of the public key (personalised, so it is no hash used anywhere
else), written as 32 lowercase hex characters; on the wire it travels as its 16 raw bytes.

ICE servers. A client that wants them offers the WebSocket subprotocol `ICE_SUBPROTOCOL`
("tcall-ice") in its opening handshake; a relay that knows ICE frames selects it, and then its
READY is always followed at once by one ICE frame (an empty list if it has no servers), and by a
new one before the credentials in the last expire (the relay sends them at half their lifetime).
The body:

    {"servers": [{"urls": ["turn:relay.example:3478?transport=udp", ...],
                  "username": "1700003600:5f1c...", "credential": "base64..."}, ...],
     "ttl": 3600}

`urls`: 1 to 4 `stun:HOST[:PORT]`, `turn:HOST[:PORT][?transport=udp|tcp]` or
`turns:HOST[:PORT][?transport=tcp]` URLs (HOST a DNS name or an IPv4 address: aiortc parses no
IPv6 literal), at most 256 characters each; `username` and `credential` come together or not at
all, each 1 to 256 printable ASCII characters without spaces, and every entry with a turn: or turns:
URL has them. At most 8 entries. `ttl`: how many seconds from now the credentials stay good,
60 to 604800, or null when no entry has any (then no new frame follows). Relative, because this
module owns no clock and a client's clock may be wrong; coturn checks the expiry in the username
against its own. The client takes the relay for an adversary here too: anything else (unknown
keys, duplicate keys, other types, a control character, an ICE frame it did not ask for, or
anything but ICE right after READY when it did) is a protocol error saying what was wrong.

Old peers: a client that does not offer the subprotocol (before ICE frames existed) never gets
one, and a relay that does not know it selects no subprotocol, so the client expects no ICE frame
and has no servers from it. Either side works with the other as before: no version change.
"""

from __future__ import annotations

import enum
import ipaddress
import json
import os
import re
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import nacl.encoding
import nacl.exceptions
import nacl.hash
import nacl.signing

VERSION = 2
WS_PATH = "/ws"  # where a relay serves its WebSocket; `ws://host:port` means this path
AUTH_CONTEXT = b"tcall-relay-auth-v2"
MAX_ORIGIN = 255
_DEFAULT_PORTS = {"ws": 80, "wss": 443, "http": 80, "https": 443}
CHALLENGE_SIZE = 32
PUBLIC_KEY_SIZE = 32
SIGNATURE_SIZE = 64
MAILBOX_SIZE = 16
MAX_FRAME = 64 * 1024
MAX_PAYLOAD = MAX_FRAME - 1 - MAILBOX_SIZE
MAX_REASON = 200
_MAILBOX_PERSON = b"tcall-mailbox"
ICE_SUBPROTOCOL = "tcall-ice"  # the WebSocket subprotocol a client offers to be sent ICE frames
MAX_ICE_BODY = 4096
MAX_ICE_SERVERS = 8
MAX_ICE_URLS = 4  # URLs in one entry
MAX_ICE_FIELD = 256  # characters of a URL, a username or a credential
MIN_ICE_TTL = 60
MAX_ICE_TTL = 7 * 86400


class Kind(enum.IntEnum):
    CHALLENGE = 1
    AUTH = 2
    READY = 3
    SEND = 4
    DELIVER = 5
    ERROR = 6
    ICE = 7


class ErrorCode(enum.IntEnum):
    """Why the relay closed a link; every ERROR frame carries one."""

    MALFORMED = 1  # a frame that does not parse
    AUTH_FAILED = 2  # bad signature or public key
    UNEXPECTED = 3  # a frame the current state does not allow (e.g. SEND before AUTH)
    TOO_LARGE = 4  # a frame over the size limit
    RATE_LIMITED = 5  # more messages than the token bucket allows
    REPLACED = 6  # the same mailbox signed in again elsewhere
    AUTH_TIMEOUT = 7  # no AUTH in time
    SHUTTING_DOWN = 8  # the relay is stopping
    UNSUPPORTED = 9  # a text frame, or a protocol version we do not speak


class RelayProtocolError(Exception):
    """A frame that breaks the protocol; `frame()` is the ERROR to send before closing."""

    def __init__(self, code: ErrorCode, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason

    def frame(self) -> bytes:
        return encode_error(self.code, self.reason)


def mailbox_id(public_key: bytes) -> str:
    """The mailbox of an Ed25519 public key: the only name the relay knows us by."""
    if len(public_key) != PUBLIC_KEY_SIZE:
        raise ValueError(
            f"an Ed25519 public key has {PUBLIC_KEY_SIZE} bytes, not {len(public_key)}"
        )
    digest = nacl.hash.blake2b(
        public_key,
        digest_size=MAILBOX_SIZE,
        person=_MAILBOX_PERSON,
        encoder=nacl.encoding.RawEncoder,
    )
    return digest.hex()


def mailbox_bytes(mailbox: str) -> bytes:
    """The 16 wire bytes of a mailbox id; ValueError if it is not 32 lowercase hex characters."""
    if len(mailbox) != 2 * MAILBOX_SIZE or mailbox.lower() != mailbox:
        raise ValueError(f"not a mailbox id: {mailbox!r}")
    return bytes.fromhex(mailbox)


def relay_origin(url: str) -> str:
    """`scheme://host:port` of a relay URL, the form both sides sign and check; ValueError if
    it is not a ws:// or wss:// URL with a host."""
    parts = urllib.parse.urlsplit(url.strip())
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"not a relay URL: {url!r}") from exc
    host = (parts.hostname or "").rstrip(".")
    if scheme not in ("ws", "wss") or not host:
        raise ValueError(f"not a relay URL (want ws://HOST:PORT): {url!r}")
    return origin(scheme, host, port)


def origin(scheme: str, host: str, port: int | None) -> str:
    """The origin of `host` (a name or an address, IPv6 with or without brackets) and `port`."""
    host = host.lower().strip("[]").rstrip(".")
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}:{port if port is not None else _DEFAULT_PORTS[scheme]}"


def auth_message(challenge: bytes, origin: str) -> bytes:
    """What a client signs to answer `challenge` from the relay at `origin`."""
    raw = origin.encode("ascii")
    if len(raw) > MAX_ORIGIN:
        raise ValueError(f"a relay origin has at most {MAX_ORIGIN} characters")
    return AUTH_CONTEXT + bytes((len(raw),)) + raw + challenge


# --- ICE servers ------------------------------------------------------------------------------

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_ICE_URL = re.compile(
    rf"(?P<scheme>stun|turns?):(?P<host>{_LABEL}(?:\.{_LABEL})*)(?::(?P<port>[1-9][0-9]{{0,4}}))?"
    r"(?:\?transport=(?P<transport>udp|tcp))?",
    re.ASCII,
)
_CREDENTIAL = re.compile(r"[\x21-\x7e]+", re.ASCII)  # printable ASCII, no space


@dataclass(frozen=True, slots=True)
class IceServer:
    """One entry of the ICE frame, shaped like WebRTC's RTCIceServer."""

    urls: tuple[str, ...]
    username: str | None = None
    credential: str | None = field(default=None, repr=False)  # never in a log or a traceback


@dataclass(frozen=True, slots=True)
class IceServers:
    """The client side: the relay's ICE servers; `ttl` seconds from now their credentials expire
    (None: none of them has credentials)."""

    servers: tuple[IceServer, ...]
    ttl: int | None


def check_ice_url(url: str) -> str:
    """`url` if the ICE frame may carry it; ValueError saying why not."""
    if not isinstance(url, str):
        raise ValueError("a URL is not a string")
    if len(url) > MAX_ICE_FIELD:
        raise ValueError(f"a URL of {len(url)} characters (at most {MAX_ICE_FIELD})")
    match = _ICE_URL.fullmatch(url)
    if match is None:
        raise ValueError(
            f"{url!r} is not stun:HOST[:PORT], turn:HOST[:PORT][?transport=udp|tcp] "
            "or turns:HOST[:PORT][?transport=tcp] (HOST a name or an IPv4 address)"
        )
    scheme, host, port, transport = match.group("scheme", "host", "port", "transport")
    if len(host) > 253:
        raise ValueError(f"{url!r}: a host name has at most 253 characters")
    if host.rpartition(".")[2].isdigit():  # all digits: it must be an address, not a name
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise ValueError(f"{url!r}: {host} is not an IPv4 address") from None
    if port is not None and int(port) > 65535:
        raise ValueError(f"{url!r}: port {port} is over 65535")
    if transport is not None and scheme == "stun":
        raise ValueError(f"{url!r}: a stun: URL takes no transport")
    if transport == "udp" and scheme == "turns":
        raise ValueError(f"{url!r}: turns: runs over TLS, so over TCP only")
    return url


def _check_ice_server(entry: object) -> IceServer:
    if not isinstance(entry, dict):
        raise ValueError("a server is not an object")
    keys = set(entry)
    if keys not in ({"urls"}, {"urls", "username", "credential"}):
        raise ValueError(
            f"a server has keys {sorted(keys)} (want urls, and username with credential)"
        )
    urls = entry["urls"]
    if not isinstance(urls, list) or not 1 <= len(urls) <= MAX_ICE_URLS:
        raise ValueError(f"a server's urls are not a list of 1 to {MAX_ICE_URLS} URLs")
    checked = tuple(check_ice_url(url) for url in urls)
    if "username" not in entry:
        if any(not url.startswith("stun:") for url in checked):
            raise ValueError("a turn: server without a username and credential")
        return IceServer(checked)
    user, credential = entry["username"], entry["credential"]
    for name, value in (("username", user), ("credential", credential)):
        if not isinstance(value, str) or len(value) > MAX_ICE_FIELD:
            raise ValueError(f"a {name} that is not a string of at most {MAX_ICE_FIELD} characters")
        if not _CREDENTIAL.fullmatch(value):
            raise ValueError(f"a {name} that is empty or not printable ASCII without spaces")
    return IceServer(checked, user, credential)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError("a key appears twice")
    return dict(pairs)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def decode_ice(body: bytes) -> IceServers:
    """The ICE servers in the body of an ICE frame; ValueError saying what is wrong with it."""
    if not body or len(body) > MAX_ICE_BODY:
        raise ValueError(f"a body of {len(body)} bytes (1 to {MAX_ICE_BODY})")
    if max(body) > 0x7E or min(body) < 0x20:
        raise ValueError("not printable ASCII")
    try:
        doc = json.loads(body, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except RecursionError:
        raise ValueError("not JSON (nested too deep)") from None
    except ValueError as exc:
        raise ValueError(f"not JSON ({str(exc).splitlines()[0][:80]})") from None
    if not isinstance(doc, dict) or set(doc) != {"servers", "ttl"}:
        raise ValueError('not an object with "servers" and "ttl" alone')
    servers, ttl = doc["servers"], doc["ttl"]
    if not isinstance(servers, list) or len(servers) > MAX_ICE_SERVERS:
        raise ValueError(f"servers is not a list of at most {MAX_ICE_SERVERS}")
    checked = tuple(_check_ice_server(entry) for entry in servers)
    has_credentials = any(server.username is not None for server in checked)
    if ttl is None:
        if has_credentials:
            raise ValueError("credentials without a ttl")
    elif type(ttl) is not int or not MIN_ICE_TTL <= ttl <= MAX_ICE_TTL:
        raise ValueError(
            f"ttl {ttl!r} is not a whole number of seconds, {MIN_ICE_TTL} to {MAX_ICE_TTL}"
        )
    elif not has_credentials:
        raise ValueError("a ttl without credentials")
    return IceServers(checked, ttl)


def encode_ice(servers: Sequence[IceServer], ttl: int | None) -> bytes:
    """An ICE frame; ValueError for anything its clients would refuse (so they never see it)."""
    entries: list[dict[str, Any]] = []
    for server in servers:
        entry: dict[str, Any] = {"urls": list(server.urls)}
        if server.username is not None or server.credential is not None:
            entry["username"], entry["credential"] = server.username, server.credential
        entries.append(entry)
    body = json.dumps({"servers": entries, "ttl": ttl}, separators=(",", ":")).encode("ascii")
    decode_ice(body)
    return bytes((Kind.ICE,)) + body


# --- encoders ---------------------------------------------------------------------------------


def encode_challenge(challenge: bytes) -> bytes:
    return bytes((Kind.CHALLENGE, VERSION)) + challenge


def encode_auth(public_key: bytes, signature: bytes) -> bytes:
    return bytes((Kind.AUTH,)) + public_key + signature


def encode_ready(mailbox: str) -> bytes:
    return bytes((Kind.READY,)) + mailbox_bytes(mailbox)


def encode_send(to_mailbox: str, payload: bytes) -> bytes:
    return bytes((Kind.SEND,)) + mailbox_bytes(to_mailbox) + payload


DELIVER_PREFIX = bytes((Kind.DELIVER,))  # the server joins it to the WebSocket header itself


def encode_deliver(payload: bytes) -> bytes:
    return DELIVER_PREFIX + payload


def encode_error(code: ErrorCode, reason: str) -> bytes:
    text = reason.encode("utf-8")[:MAX_REASON]
    # Cutting may split a character; drop the broken tail so the reason always decodes.
    text = text.decode("utf-8", "ignore").encode("utf-8")
    return bytes((Kind.ERROR, code)) + text


# --- events -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Authenticated:
    """The relay side: the client proved it holds the key of `mailbox`."""

    mailbox: str


class Route(NamedTuple):
    """The relay side: an authenticated client asks to pass `payload` to `to_mailbox`.

    A named tuple, not a frozen dataclass: the relay makes one per message, and a frozen
    dataclass takes four times as long to build."""

    to_mailbox: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class Ready:
    """The client side: the relay accepted our AUTH; `mailbox` is ours."""

    mailbox: str


@dataclass(frozen=True, slots=True)
class Delivered:
    """The client side: a payload arrived in our mailbox."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class Refused:
    """The client side: the relay closed the link, and said why."""

    code: int
    reason: str


ServerEvent = Authenticated | Route
ClientEvent = Ready | Delivered | Refused | IceServers


def _check_size(data: bytes, max_frame: int) -> None:
    if len(data) > max_frame:
        raise RelayProtocolError(
            ErrorCode.TOO_LARGE, f"frame of {len(data)} bytes over {max_frame}"
        )
    if not data:
        raise RelayProtocolError(ErrorCode.MALFORMED, "empty frame")


class ServerConnection:
    """The relay's side of one link: challenge, then AUTH, then any number of SENDs."""

    def __init__(
        self, challenge: bytes | None = None, max_frame: int = MAX_FRAME, origin: str = ""
    ) -> None:
        self.challenge = challenge if challenge is not None else os.urandom(CHALLENGE_SIZE)
        if len(self.challenge) != CHALLENGE_SIZE:
            raise ValueError("a challenge has 32 bytes")
        self.max_frame = max_frame
        self.origin = origin  # this relay's own `relay_origin`: an AUTH must be signed for it
        self.mailbox: str | None = None
        self.ice = False  # the client asked for ICE frames (`ICE_SUBPROTOCOL`), and gets them

    def hello(self) -> bytes:
        """The first frame the relay sends."""
        return encode_challenge(self.challenge)

    def ready(self) -> bytes:
        """The frame that tells an authenticated client its mailbox."""
        if self.mailbox is None:
            raise RuntimeError("not authenticated")
        return encode_ready(self.mailbox)

    def receive(self, data: bytes) -> ServerEvent:
        """Parse one client frame; raises RelayProtocolError for anything but a valid next step."""
        # One comparison chain for the common case, a SEND of a sane size from a signed-in link.
        if 1 + MAILBOX_SIZE < len(data) <= self.max_frame and data[0] == Kind.SEND and self.mailbox:
            return Route(data[1 : 1 + MAILBOX_SIZE].hex(), data[1 + MAILBOX_SIZE :])
        _check_size(data, self.max_frame)
        kind = data[0]
        if self.mailbox is None:
            if kind != Kind.AUTH:
                raise RelayProtocolError(ErrorCode.UNEXPECTED, "authenticate first")
            return self._authenticate(data)
        if kind != Kind.SEND:
            raise RelayProtocolError(ErrorCode.UNEXPECTED, f"unexpected frame kind {kind}")
        raise RelayProtocolError(ErrorCode.MALFORMED, "SEND without a payload")

    def _authenticate(self, data: bytes) -> Authenticated:
        if len(data) != 1 + PUBLIC_KEY_SIZE + SIGNATURE_SIZE:
            raise RelayProtocolError(ErrorCode.MALFORMED, "AUTH has the wrong length")
        public_key = data[1 : 1 + PUBLIC_KEY_SIZE]
        signature = data[1 + PUBLIC_KEY_SIZE :]
        try:
            message = auth_message(self.challenge, self.origin)
            nacl.signing.VerifyKey(public_key).verify(message, signature)
        except (nacl.exceptions.BadSignatureError, nacl.exceptions.CryptoError, ValueError) as exc:
            raise RelayProtocolError(ErrorCode.AUTH_FAILED, "bad signature") from exc
        self.mailbox = mailbox_id(public_key)
        return Authenticated(self.mailbox)


class ClientConnection:
    """Our side of one link: answer the challenge, then send and receive payloads."""

    def __init__(
        self, signing_key: nacl.signing.SigningKey, origin: str = "", ice: bool = False
    ) -> None:
        """`origin`: `relay_origin` of the URL we dialled; our AUTH is good for that relay only.
        `ice`: the relay selected `ICE_SUBPROTOCOL`, so ICE frames come, the first right after
        READY; until it has come, `awaiting_ice` is true."""
        self._signing_key = signing_key
        self.origin = origin
        self.ice = ice
        self.public_key = bytes(signing_key.verify_key)
        self.mailbox = mailbox_id(self.public_key)
        self.ready = False
        self.awaiting_ice = False
        self._answered = False
        self._outgoing: list[bytes] = []

    def data_to_send(self) -> list[bytes]:
        """Frames the protocol wants sent, in order; calling this empties the list."""
        frames, self._outgoing = self._outgoing, []
        return frames

    def send(self, to_mailbox: str, payload: bytes) -> None:
        """Queue one payload for `to_mailbox`; ValueError for a bad mailbox or payload size."""
        if not self.ready:
            raise RuntimeError("the relay has not accepted us yet")
        if not payload or len(payload) > MAX_PAYLOAD:
            raise ValueError(f"a payload has 1 to {MAX_PAYLOAD} bytes, not {len(payload)}")
        self._outgoing.append(encode_send(to_mailbox, payload))

    def receive(self, data: bytes) -> ClientEvent | None:
        """Parse one relay frame; raises RelayProtocolError if the relay breaks the protocol."""
        _check_size(data, MAX_FRAME)
        kind = data[0]
        if kind == Kind.ERROR and len(data) >= 2:
            return Refused(data[1], data[2:].decode("utf-8", "replace"))
        if not self.ready:
            if kind == Kind.CHALLENGE and not self._answered:
                self._answer(data)
                return None
            if kind == Kind.READY:
                if data[1:] != mailbox_bytes(self.mailbox):
                    raise RelayProtocolError(ErrorCode.MALFORMED, "READY names another mailbox")
                self.ready = True
                self.awaiting_ice = self.ice
                return Ready(self.mailbox)
        elif self.awaiting_ice:
            if kind == Kind.ICE:
                return self._ice(data)
            raise RelayProtocolError(
                ErrorCode.UNEXPECTED, f"frame kind {kind} from relay where ICE servers should be"
            )
        elif kind == Kind.DELIVER and len(data) > 1:
            return Delivered(data[1:])
        elif kind == Kind.ICE and self.ice:
            return self._ice(data)
        raise RelayProtocolError(ErrorCode.UNEXPECTED, f"unexpected frame kind {kind} from relay")

    def _ice(self, data: bytes) -> IceServers:
        try:
            event = decode_ice(data[1:])
        except ValueError as exc:
            raise RelayProtocolError(ErrorCode.MALFORMED, f"bad ICE servers: {exc}") from None
        self.awaiting_ice = False
        return event

    def _answer(self, data: bytes) -> None:
        if len(data) != 2 + CHALLENGE_SIZE:
            raise RelayProtocolError(ErrorCode.MALFORMED, "CHALLENGE has the wrong length")
        if data[1] != VERSION:
            raise RelayProtocolError(ErrorCode.UNSUPPORTED, f"relay speaks version {data[1]}")
        signature = self._signing_key.sign(auth_message(data[2:], self.origin)).signature
        self._outgoing.append(encode_auth(self.public_key, signature))
        self._answered = True
