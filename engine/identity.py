"""The user's long-term Ed25519 identity key: created on first use, kept in one 0600 file.

The key file holds the 32-byte Ed25519 seed and nothing else. Like ssh, tcall refuses a key file
that group or others may read or write, or that another user owns (engine/atomic.py). The public
key is what friends pin; its fingerprint (grouped hex of SHA-256 of the public key) is a short
human-readable form of it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import nacl.exceptions
import nacl.public
import nacl.signing

from tcall.engine import paths
from tcall.engine.atomic import read_file, write_atomic
from tcall.engine.errors import ConfigError, IdentityError

KEY_FILE = "identity.key"
PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64
SEED_BYTES = 32
KEY_FILE_LIMIT = 4096


def fingerprint(public_key: bytes) -> str:
    """Ten groups of four hex digits: 80 bits of SHA-256, enough to tell keys apart by eye."""
    digest = hashlib.sha256(b"tcall-fingerprint\0" + public_key).hexdigest()[:40]
    return " ".join(digest[i : i + 4] for i in range(0, 40, 4))


def box_public_key(public_key: bytes) -> nacl.public.PublicKey:
    """The X25519 key that messages to the holder of this Ed25519 key are sealed to.

    Raises IdentityError for bytes that are not a usable Ed25519 public key (wrong length,
    not on the curve, or of small order): libsodium refuses to convert those.
    """
    if len(public_key) != PUBLIC_KEY_BYTES:
        raise IdentityError(f"an identity key has {PUBLIC_KEY_BYTES} bytes, not {len(public_key)}")
    try:
        return nacl.signing.VerifyKey(public_key).to_curve25519_public_key()
    except (nacl.exceptions.CryptoError, ValueError, TypeError) as exc:
        raise IdentityError("not a valid Ed25519 public key") from exc


class Identity:
    """A signing key pair; the private half never leaves this object except via `seed`."""

    def __init__(self, signing_key: nacl.signing.SigningKey) -> None:
        self._signing_key = signing_key
        self.public_key: bytes = bytes(signing_key.verify_key)

    @classmethod
    def generate(cls) -> Identity:
        return cls(nacl.signing.SigningKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> Identity:
        return cls(nacl.signing.SigningKey(seed))

    @property
    def seed(self) -> bytes:
        return bytes(self._signing_key)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public_key)

    def sign(self, data: bytes) -> bytes:
        """A detached 64-byte Ed25519 signature over `data`."""
        return self._signing_key.sign(data).signature

    def box_private_key(self) -> nacl.public.PrivateKey:
        """The X25519 private key that opens messages sealed to `box_public_key(public_key)`."""
        return self._signing_key.to_curve25519_private_key()


def identity_path() -> Path:
    return paths.data_dir() / KEY_FILE


def _read_seed(path: Path) -> bytes | None:
    # A little room above 32 bytes, so a damaged key is reported as damaged, not as too large.
    return read_file(path, KEY_FILE_LIMIT, "identity key", secret=True)


def load_identity(path: Path) -> Identity:
    seed = _read_seed(path)
    if seed is None:
        raise ConfigError(f"cannot read identity key {path}: No such file or directory")
    if len(seed) != SEED_BYTES:
        raise ConfigError(f"identity key {path} is damaged (expected 32 bytes, found {len(seed)})")
    return Identity.from_seed(seed)


def load_or_create_identity(path: Path | None = None) -> Identity:
    """The user's identity; the first call creates it (mode 0600, written atomically).

    Creation never replaces anything: the key is linked into place only if the path is free, so
    of two processes creating it at once one wins and both read back the winner's key. A dangling
    symbolic link in its place is refused (read_file), never taken as "no key yet".
    """
    path = path if path is not None else identity_path()
    if _read_seed(path) is None:
        write_atomic(path, Identity.generate().seed, mode=0o600, exclusive=True)
    return load_identity(path)
