"""The identity key file: created once, mode 0600, atomic, under TCALL_HOME; damage refused."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest

from tcall.engine import identity as identity_mod
from tcall.engine.errors import ConfigError, IdentityError
from tcall.engine.identity import box_public_key, fingerprint, load_or_create_identity


def test_first_use_creates_a_0600_key_under_tcall_home(tcall_home: Path) -> None:
    me = load_or_create_identity()
    path = tcall_home / "identity.key"
    assert path.read_bytes() == me.seed
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_identity().public_key == me.public_key


def test_no_temporary_file_is_left_behind(tcall_home: Path) -> None:
    load_or_create_identity()
    assert sorted(p.name for p in tcall_home.iterdir()) == ["identity.key"]


def test_a_crash_while_writing_leaves_no_key_file(
    tcall_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "link", crash)  # the key is linked into place, never replaced
    with pytest.raises(ConfigError, match="cannot write .*No space left on device"):
        load_or_create_identity()
    assert list(tcall_home.iterdir()) == []


def test_damaged_key_file_is_a_config_error(tcall_home: Path) -> None:
    (tcall_home / "identity.key").write_bytes(b"short")
    (tcall_home / "identity.key").chmod(0o600)
    with pytest.raises(ConfigError, match="damaged"):
        load_or_create_identity()


def test_two_homes_have_two_identities(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TCALL_HOME", str(tmp_path / "one"))
    one = load_or_create_identity()
    monkeypatch.setenv("TCALL_HOME", str(tmp_path / "two"))
    two = load_or_create_identity()
    assert one.public_key != two.public_key
    assert (tmp_path / "one" / "identity.key").exists()


def test_fingerprint_is_ten_groups_of_hex() -> None:
    me = identity_mod.Identity.from_seed(bytes(range(32)))
    assert me.fingerprint == "c85c bf81 2a31 e06f c316 7734 4a84 3f6b 1910 0252"
    assert re.fullmatch(r"([0-9a-f]{4} ){9}[0-9a-f]{4}", fingerprint(os.urandom(32)))


def test_signatures_verify_with_the_public_key() -> None:
    import nacl.signing

    me = identity_mod.Identity.generate()
    nacl.signing.VerifyKey(me.public_key).verify(b"hello", me.sign(b"hello"))


@pytest.mark.parametrize("key", [b"\x00" * 32, b"\x01" + b"\x00" * 31, b"\x05" * 31])
def test_unusable_public_keys_are_identity_errors(key: bytes) -> None:
    with pytest.raises(IdentityError):
        box_public_key(key)
