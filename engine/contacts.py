"""The contact book: names bound to pinned identity keys, in `contacts.toml` under the data dir.

A contact's key is pinned when it is added. A different key for an existing name is never
taken silently: `add` refuses unless the caller passes `replace=True`, and a replaced key
starts unverified. Every change rewrites the whole file atomically (mode 0600), under the
folder's lock (engine/locking.py).
"""

from __future__ import annotations

import base64
import re
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import tomli_w

from tcall.engine import paths
from tcall.engine.address import check_relay_url, format_address
from tcall.engine.atomic import read_file, write_atomic
from tcall.engine.errors import ConfigError, IdentityError, UsageError
from tcall.engine.identity import PUBLIC_KEY_BYTES, fingerprint
from tcall.engine.locking import locked
from tcall.engine.wire import SenderStatus

CONTACTS_FILE = "contacts.toml"
MAX_BYTES = 4 << 20  # about 20,000 contacts
_NAME = re.compile(r"[^\W_][\w.-]{0,63}")


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise UsageError(
            f"bad contact name {name!r}: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


@dataclass(frozen=True)
class Contact:
    name: str
    public_key: bytes
    relay_url: str = ""
    verified: bool = False
    blocked: bool = False
    auto_answer: bool = False

    @property
    def address(self) -> str:
        return format_address(self.public_key, self.relay_url)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public_key)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "address": self.address,
            "fingerprint": self.fingerprint,
            "relay": self.relay_url,
            "verified": self.verified,
            "blocked": self.blocked,
            "auto_answer": self.auto_answer,
        }


def _key_text(key: bytes) -> str:
    return base64.b32encode(key).decode("ascii").rstrip("=").lower()


def _contact_from_toml(path: Path, index: int, entry: Any) -> Contact:
    where = f"{path}: contact #{index + 1}"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where} is not a table")
    try:
        name = check_name(entry["name"])
        key = base64.b32decode(entry["key"].upper() + "=" * (-len(entry["key"]) % 8))
        flags = {f: entry.get(f, False) for f in ("verified", "blocked", "auto_answer")}
        relay = entry.get("relay", "")
        if relay:
            check_relay_url(relay)
    except (KeyError, TypeError, AttributeError, ValueError, UsageError) as exc:
        raise ConfigError(f"{where} is invalid ({exc})") from exc
    if len(key) != PUBLIC_KEY_BYTES or not all(isinstance(v, bool) for v in flags.values()):
        raise ConfigError(f"{where} is invalid (bad key or flag)")
    return Contact(name=name, public_key=key, relay_url=relay, **flags)


def _read_contacts(path: Path) -> list[Contact]:
    raw = read_file(path, MAX_BYTES, "contacts file")
    if raw is None:
        return []
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read contacts file {path}: {exc}") from None
    entries = data.get("contact", [])
    if not isinstance(entries, list):
        raise ConfigError(f"{path}: 'contact' must be an array of tables")
    return [_contact_from_toml(path, i, e) for i, e in enumerate(entries)]


class ContactBook:
    """The contacts of one tcall home. Mutating methods save immediately.

    Each change takes the folder's lock, re-reads the file, applies itself and writes the file
    before letting go, so a change made meanwhile by another process (or another ContactBook) is
    kept, never overwritten with this object's older copy.
    """

    def __init__(self, path: Path, contacts: list[Contact]) -> None:
        self.path = path
        self._contacts = {c.name: c for c in contacts}

    @classmethod
    def load(cls, path: Path | None = None) -> ContactBook:
        path = path if path is not None else paths.data_dir() / CONTACTS_FILE
        return cls(path, _read_contacts(path))

    def save(self) -> None:
        entries = []
        for contact in self._contacts.values():
            entry = asdict(contact)
            entry["key"] = _key_text(entry.pop("public_key"))
            entry["relay"] = entry.pop("relay_url")
            entries.append(entry)
        with locked(self.path.parent):
            write_atomic(self.path, tomli_w.dumps({"contact": entries}).encode("utf-8"))

    @contextmanager
    def _changing(self) -> Iterator[None]:
        """Under the lock: the file as it is now, then this change, then saved."""
        with locked(self.path.parent):
            self._contacts = {c.name: c for c in _read_contacts(self.path)}
            yield
            self.save()

    def contacts(self) -> list[Contact]:
        return sorted(self._contacts.values(), key=lambda c: c.name.casefold())

    def get(self, name: str) -> Contact:
        try:
            return self._contacts[name]
        except KeyError:
            raise UsageError(f"unknown contact: {name}") from None

    def by_key(self, public_key: bytes) -> Contact | None:
        return next((c for c in self._contacts.values() if c.public_key == public_key), None)

    def add(
        self, name: str, public_key: bytes, relay_url: str = "", *, replace_key: bool = False
    ) -> Contact:
        """Add or update a contact. A new key for a known name needs `replace_key=True`."""
        check_name(name)
        with self._changing():
            holder = self.by_key(public_key)
            if holder is not None and holder.name != name:
                raise UsageError(f"that key already belongs to contact {holder.name}")
            old = self._contacts.get(name)
            if old is None:
                return self._put(Contact(name=name, public_key=public_key, relay_url=relay_url))
            if old.public_key != public_key:
                if not replace_key:
                    raise IdentityError(
                        f"contact {name} already has a different key (fingerprint "
                        f"{old.fingerprint}); if {name} really has a new key, add it again with "
                        "--replace and verify the safety number"
                    )
                # A new key earns nothing the old one had been trusted with; a block still holds.
                old = replace(old, public_key=public_key, verified=False, auto_answer=False)
            return self._put(replace(old, relay_url=relay_url))

    def remove(self, name: str) -> None:
        with self._changing():
            self.get(name)
            del self._contacts[name]

    def rename(self, old: str, new: str) -> Contact:
        check_name(new)
        with self._changing():
            contact = self.get(old)
            if new in self._contacts and new != old:
                raise UsageError(f"contact {new} already exists")
            del self._contacts[old]
            return self._put(replace(contact, name=new))

    def _put(self, contact: Contact) -> Contact:
        self._contacts[contact.name] = contact
        return contact

    def set_blocked(self, name: str, blocked: bool) -> Contact:
        with self._changing():
            return self._put(replace(self.get(name), blocked=blocked))

    def set_verified(self, name: str, verified: bool) -> Contact:
        with self._changing():
            return self._put(replace(self.get(name), verified=verified))

    def set_auto_answer(self, name: str, auto_answer: bool) -> Contact:
        with self._changing():
            return self._put(replace(self.get(name), auto_answer=auto_answer))

    def lookup(self, public_key: bytes) -> SenderStatus:
        """Who sent this? For `wire.open_message` when any contact may be the sender."""
        contact = self.by_key(public_key)
        return SenderStatus.known(contact.name) if contact else SenderStatus.unknown()
