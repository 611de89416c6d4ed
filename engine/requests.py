"""Contact requests: people who have our address and ask to be added back, in `requests.json`.

Dave adds bob; bob never added dave. Dave's first call to bob, or `tcall contacts request bob`,
carries dave's relay URL and the name he suggests for himself inside the sealed, signed message
(engine/wire.py). Bob's tcall never rings for it: it keeps a `ContactRequest` here until bob
accepts it (dave becomes a contact, pinned to the key that signed the request, with the relay it
carried), ignores it (it is forgotten; a new one may come), or blocks dave (dave becomes a blocked
contact: his calls are silenced and his requests dropped from then on).

Whoever sends a request is a stranger, and strangers may be adversaries who flood: there is one
entry per key (a newer request from the same key replaces it), at most `MAX_REQUESTS` of them (the
oldest go first), and the suggested name is kept only if it is a valid contact name that no contact
has (`suggested_name`). The file (mode 0600) is written atomically, under the folder's lock after
reading it again, so requests another process added or answered meanwhile are kept. The Phone
notes requests in memory (`note`) and writes them (`save`) a few times a minute at most.
"""

from __future__ import annotations

import base64
import json
import math
import os
from collections.abc import Container
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tcall.engine import paths
from tcall.engine.address import check_relay_url
from tcall.engine.atomic import read_json_array, write_atomic
from tcall.engine.contacts import Contact, ContactBook, check_name
from tcall.engine.errors import ConfigError, UsageError
from tcall.engine.identity import PUBLIC_KEY_BYTES, fingerprint
from tcall.engine.locking import locked

REQUESTS_FILE = "requests.json"
MAX_REQUESTS = 50  # pending requests kept; beyond it the oldest is dropped
MAX_BYTES = 1 << 20  # 50 entries take some 20 KB
MIN_FINGERPRINT_DIGITS = 8  # a fingerprint prefix that names a request: at least this long


def suggested_name(name: str | None, taken: Container[str]) -> str:
    """The name a stranger suggested, if it may be used: a valid contact name that none of our
    contacts has (one who does is someone else, or the same person with a new key: either way the
    name would mislead). Anything else is dropped, and the request goes by its fingerprint."""
    if not name or name in taken:
        return ""
    try:
        return check_name(name)
    except UsageError:
        return ""


@dataclass(frozen=True)
class ContactRequest:
    """Someone who is not our contact asks to be added."""

    public_key: bytes  # the key that signed the request: the one a contact made from it pins
    name: str  # the name they suggest for themselves (see `suggested_name`), or ""
    relay_url: str  # their relay, as they said; "" for none (then they use ours)
    received_at: float  # unix seconds, our clock

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public_key)

    @property
    def label(self) -> str:
        """How the request is shown: the suggested name, else "unknown" and the fingerprint's
        start, as a silenced stranger's call is."""
        return self.name or f"unknown {self.fingerprint[:19]}"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "fingerprint": self.fingerprint,
            "relay": self.relay_url,
            "received_at": self.received_at,
        }


def _key_text(key: bytes) -> str:
    return base64.b32encode(key).decode("ascii").rstrip("=").lower()


def _entry(request: ContactRequest) -> dict[str, Any]:
    return {
        "key": _key_text(request.public_key),
        "name": request.name,
        "relay": request.relay_url,
        "received_at": request.received_at,
    }


def _request(path: Path, index: int, entry: Any) -> ContactRequest:
    """One checked entry, or a ConfigError naming it."""
    try:
        if not isinstance(entry, dict) or set(entry) != {"key", "name", "relay", "received_at"}:
            raise TypeError("fields must be key, name, relay and received_at")
        text, name, relay, at = entry["key"], entry["name"], entry["relay"], entry["received_at"]
        if not isinstance(text, str) or not isinstance(name, str) or not isinstance(relay, str):
            raise TypeError("key, name and relay must be text")
        key = base64.b32decode(text.upper() + "=" * (-len(text) % 8))
        if len(key) != PUBLIC_KEY_BYTES:
            raise TypeError("bad key")
        if name:
            check_name(name)
        if relay:
            check_relay_url(relay)
        if type(at) not in (int, float) or not math.isfinite(at):
            raise TypeError("received_at must be a number")
    except (TypeError, ValueError, UsageError) as exc:
        raise ConfigError(
            f"{path}: unreadable contact requests (entry #{index + 1}: {exc})"
        ) from None
    return ContactRequest(key, name, relay, float(at))


def _newest(requests: dict[bytes, ContactRequest]) -> dict[bytes, ContactRequest]:
    """At most MAX_REQUESTS, the newest."""
    if len(requests) <= MAX_REQUESTS:
        return requests
    kept = sorted(requests.values(), key=lambda r: r.received_at)[-MAX_REQUESTS:]
    return {r.public_key: r for r in kept}


class RequestBook:
    """The pending contact requests of one tcall home."""

    def __init__(self, path: Path, requests: list[ContactRequest]) -> None:
        self.path = path
        self._requests = _newest({r.public_key: r for r in requests})
        self._unsaved: dict[bytes, ContactRequest] = {}  # noted, not written yet

    @classmethod
    def load(cls, path: Path | None = None) -> RequestBook:
        path = path if path is not None else paths.data_dir() / REQUESTS_FILE
        return cls(path, cls._read(path))

    @staticmethod
    def _read(path: Path) -> list[ContactRequest]:
        entries = read_json_array(path, MAX_BYTES, "contact requests")
        return [_request(path, i, entry) for i, entry in enumerate(entries)]

    def pending(self) -> list[ContactRequest]:
        """Newest first."""
        return sorted(self._requests.values(), key=lambda r: r.received_at, reverse=True)

    def note(self, request: ContactRequest) -> None:
        """Remember `request` (replacing an older one from its key), in memory until `save`."""
        self._requests = _newest({**self._requests, request.public_key: request})
        self._unsaved = _newest({**self._unsaved, request.public_key: request})

    @property
    def unsaved(self) -> bool:
        return bool(self._unsaved)

    def save(self) -> None:
        """Write the requests noted since the last save into the file as it is now."""
        if not self._unsaved:
            return
        with locked(self.path.parent):
            current = {r.public_key: r for r in self._read(self.path)}
            self._requests = _newest({**current, **self._unsaved})
            self._unsaved = {}
            self._write()

    def _write(self) -> None:
        if not self._requests and not os.path.lexists(self.path):
            return
        data = json.dumps([_entry(r) for r in self.pending()], indent=1).encode()
        write_atomic(self.path, data)

    def discard(self, public_key: bytes) -> ContactRequest | None:
        """Forget the request from `public_key` (None if there was none)."""
        self._unsaved.pop(public_key, None)
        with locked(self.path.parent):
            self._requests = _newest(
                {r.public_key: r for r in self._read(self.path)} | self._unsaved
            )
            gone = self._requests.pop(public_key, None)
            if gone is not None:
                self._write()
        return gone

    def find(self, ref: str) -> ContactRequest:
        """The request that `ref` names: the name it suggests, or the start of its fingerprint
        (at least 8 hex digits; spaces do not matter). UsageError if none or several match."""
        pending = self.pending()
        matches = [r for r in pending if r.name and r.name == ref]
        digits = "".join(ref.split()).lower()
        if not matches and len(digits) >= MIN_FINGERPRINT_DIGITS:
            matches = [r for r in pending if r.fingerprint.replace(" ", "").startswith(digits)]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise UsageError(
                f"{len(matches)} contact requests match {ref!r}: name one by its fingerprint"
            )
        raise UsageError(
            f"no contact request from {ref!r} (tcall contacts requests lists them, each by its "
            f"name or the first {MIN_FINGERPRINT_DIGITS} or more digits of its fingerprint)"
        )


def accept(requests: RequestBook, contacts: ContactBook, ref: str, name: str = "") -> Contact:
    """Add the sender of request `ref` as a contact called `name` (default: the name they
    suggested), pinned to the key that signed the request, with the relay it carried."""
    request = requests.find(ref)
    holder = contacts.by_key(request.public_key)
    if holder is not None:  # added meanwhile, e.g. with `contacts add`
        requests.discard(request.public_key)
        return holder
    name = name or request.name
    if not name:
        raise UsageError(
            f"{request.label} suggested no name: choose one, "
            f"e.g. tcall contacts accept {request.fingerprint[:9].replace(' ', '')} --name NAME"
        )
    check_name(name)
    if any(c.name == name for c in contacts.contacts()):
        raise UsageError(
            f"you already have a contact called {name}: choose another name with --name NAME"
        )
    contact = contacts.add(name, request.public_key, request.relay_url)
    requests.discard(request.public_key)
    return contact


def block(requests: RequestBook, contacts: ContactBook, ref: str, name: str = "") -> Contact:
    """Block the sender of request `ref`: they become a blocked contact (named `name`, else the
    name they suggested, else "blocked-" and their fingerprint's start), so their calls are
    silenced and their requests dropped, and `tcall contacts unblock` undoes it."""
    request = requests.find(ref)
    holder = contacts.by_key(request.public_key)
    if holder is None:
        taken = {c.name for c in contacts.contacts()}
        fallback = "blocked-" + request.fingerprint.replace(" ", "")[:MIN_FINGERPRINT_DIGITS]
        name = name or suggested_name(request.name, taken) or fallback
        holder = contacts.add(name, request.public_key, request.relay_url)
    contact = contacts.set_blocked(holder.name, True)
    requests.discard(request.public_key)
    return contact


def ignore(requests: RequestBook, ref: str) -> ContactRequest:
    """Forget request `ref`; its sender stays a stranger and may ask again."""
    request = requests.find(ref)
    requests.discard(request.public_key)
    return request
