"""Signal-style safety numbers: 60 digits that both people in a call see identically.

The algorithm is Signal's NumericFingerprintGenerator (display version 1/2):
  hash = SHA-512(0x0000 || key || stable_id || key), then 5199 more rounds of
  hash = SHA-512(hash || key); the first 30 bytes become six 5-digit groups
  (each 5-byte big-endian integer mod 100000). Each party gets 30 digits; the two
  halves are sorted and concatenated, so both sides print the same 60 digits.

tcall has no phone number or account id, so each party's stable identifier is its
Ed25519 public key itself, and the key bytes are the raw 32-byte public key.
"""

from __future__ import annotations

import hashlib

ITERATIONS = 5200
_VERSION = b"\x00\x00"


def logical_fingerprint(key: bytes, stable_id: bytes, iterations: int = ITERATIONS) -> bytes:
    """The 64-byte per-party hash that Signal calls a logical fingerprint."""
    digest = hashlib.sha512(_VERSION + key + stable_id + key).digest()
    for _ in range(iterations - 1):
        digest = hashlib.sha512(digest + key).digest()
    return digest


def _digits(digest: bytes) -> str:
    return "".join(
        f"{int.from_bytes(digest[i : i + 5], 'big') % 100_000:05d}" for i in range(0, 30, 5)
    )


def signal_safety_number(
    local_key: bytes, local_id: bytes, remote_key: bytes, remote_id: bytes
) -> str:
    """The 60-digit display string, exactly as libsignal computes it."""
    local = _digits(logical_fingerprint(local_key, local_id))
    remote = _digits(logical_fingerprint(remote_key, remote_id))
    return local + remote if local < remote else remote + local


def safety_number(our_key: bytes, their_key: bytes) -> str:
    """tcall's safety number for two Ed25519 public keys; symmetric in its arguments."""
    return signal_safety_number(our_key, our_key, their_key, their_key)


def grouped(number: str) -> str:
    """60 digits as 12 groups of 5, in three lines of four, as Signal shows them."""
    groups = [number[i : i + 5] for i in range(0, len(number), 5)]
    return "\n".join(" ".join(groups[i : i + 4]) for i in range(0, len(groups), 4))
