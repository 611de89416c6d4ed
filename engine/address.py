"""The shareable tcall address: one line of text (or a QR code) that is all a friend needs.

Format:

    tcall:<key>@<relay URL>#<checksum>      e.g. tcall:abc…xyz@ws://203.0.113.5:7711#k3v9q2aa
    tcall:<key>#<checksum>                  when the user has no relay set yet

- `<key>` is the 32-byte Ed25519 public key in lowercase RFC 4648 base32 without padding
  (52 characters: no characters that need quoting in a shell, case-insensitive when read).
- `<relay URL>` is the owner's relay, `ws://` or `wss://`, host and optional port and path.
- `<checksum>` is the first 5 bytes of SHA-256("tcall-address-v1\\0" + everything before '#'),
  in the same base32 (8 characters). It catches typos and truncation, not forgery: the key
  itself is what the safety number verifies.

Whitespace anywhere in a pasted address is ignored, so a line-wrapped copy still parses.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from urllib.parse import urlsplit

from tcall.engine.errors import IdentityError, UsageError
from tcall.engine.identity import box_public_key

PREFIX = "tcall:"
_CHECKSUM_BYTES = 5
_KEY_CHARS = 52  # 32 bytes in unpadded base32


def _b32(data: bytes) -> str:
    return base64.b32encode(data).decode("ascii").rstrip("=").lower()


def _checksum(body: str) -> str:
    return _b32(hashlib.sha256(b"tcall-address-v1\0" + body.encode()).digest()[:_CHECKSUM_BYTES])


def check_relay_url(url: str) -> str:
    """Return `url` if it is a usable relay URL, else raise ValueError saying why."""
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss"):
        raise ValueError("a relay URL starts with ws:// or wss://")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError("the relay port must be a number from 1 to 65535") from exc
    if not parts.hostname:
        raise ValueError("the relay URL has no host")
    if port == 0:
        raise ValueError("the relay port must be a number from 1 to 65535")
    if parts.username is not None or parts.query or parts.fragment:
        raise ValueError("a relay URL has no user, query or fragment part")
    if not url.isascii() or not url.isprintable():
        raise ValueError("a relay URL has only printable ASCII characters")
    if any(ch.isspace() or ch in "#@" for ch in url):
        raise ValueError("a relay URL contains no spaces, '#' or '@'")
    return url


@dataclass(frozen=True)
class Address:
    public_key: bytes
    relay_url: str  # "" when the owner had no relay configured

    def __str__(self) -> str:
        body = PREFIX + _b32(self.public_key)
        if self.relay_url:
            body += "@" + self.relay_url
        return f"{body}#{_checksum(body)}"


def format_address(public_key: bytes, relay_url: str) -> str:
    return str(Address(public_key, relay_url))


def parse_address(text: str) -> Address:
    """Parse an address; any defect raises UsageError("garbled address: <why>")."""
    compact = "".join(text.split())
    if compact[: len(PREFIX)].lower() != PREFIX:
        raise UsageError(f"garbled address: it must start with '{PREFIX}'")
    body, hash_mark, checksum = compact.rpartition("#")
    if not hash_mark:
        raise UsageError("garbled address: the '#checksum' at the end is missing")
    key_text, at, relay_url = body[len(PREFIX) :].partition("@")
    key_text = key_text.lower()
    canonical = PREFIX + key_text + (at + relay_url if at else "")
    if checksum.lower() != _checksum(canonical):
        raise UsageError("garbled address: the checksum does not match (copy it again)")
    if len(key_text) != _KEY_CHARS:
        raise UsageError(f"garbled address: the key has {len(key_text)} characters, not 52")
    try:
        key = base64.b32decode(key_text.upper() + "====")
    except ValueError as exc:
        raise UsageError("garbled address: the key is not valid base32") from exc
    if _b32(key) != key_text:
        raise UsageError("garbled address: the key is not valid base32")
    try:
        box_public_key(key)
    except IdentityError as exc:
        raise UsageError(f"garbled address: {exc}") from exc
    if at:
        try:
            check_relay_url(relay_url)
        except ValueError as exc:
            raise UsageError(f"garbled address: {exc}") from exc
    return Address(key, relay_url)


_HALF_BLOCKS = {(True, True): "█", (True, False): "▀", (False, True): "▄", (False, False): " "}


def qr_lines(text: str) -> list[str]:
    """`text` as a QR code in half-block characters, two modules per character cell.

    Light modules are drawn as ink, so the code reads correctly on the usual light-on-dark
    terminal; the quiet zone is two modules wide, which phone scanners accept. The lowest error
    correction (L, 7%) keeps the code small enough for an 80x24 terminal: a screen is never
    smudged or torn, which is what the higher levels are for.
    """
    import qrcode  # here, not at the top: it costs 40 ms that `tcall settings` would pay

    code = qrcode.QRCode(border=2, error_correction=qrcode.constants.ERROR_CORRECT_L)
    code.add_data(text)
    code.make(fit=True)
    matrix = [[not dark for dark in row] for row in code.get_matrix()]
    if len(matrix) % 2:
        matrix.append([True] * len(matrix[0]))
    return [
        "".join(_HALF_BLOCKS[(top, bottom)] for top, bottom in zip(upper, lower, strict=True))
        for upper, lower in zip(matrix[0::2], matrix[1::2], strict=True)
    ]
