"""Safety numbers: libsignal's published vectors, symmetry, and frozen vectors for tcall keys."""

from __future__ import annotations

from tcall.engine.identity import Identity
from tcall.engine.safety import grouped, logical_fingerprint, safety_number, signal_safety_number

# libsignal rust/protocol/src/fingerprint.rs and NumericFingerprintGeneratorTest.java
ALICE = bytes.fromhex("0506863bc66d02b40d27b8d49ca7c09e9239236f9d7d25d6fcca5ce13c7064d868")
BOB = bytes.fromhex("05f781b6fb32fed9ba1cf2de978d4d5da28dc34046ae814402b5c0dbd96fda907b")
ALICE_ID, BOB_ID = b"+14152222222", b"+14153333333"
DISPLAYABLE = "300354477692869396892869876765458257569162576843440918079131"
# The 32-byte logical fingerprints inside libsignal's scannable (protobuf) vectors.
ALICE_LOGICAL = "1e301a0353dce3dbe7684cb8336e85136cdc0ee96219494ada305d62a7bd61df"
BOB_LOGICAL = "d62cbf73a11592015b6b9f1682ac306fea3aaf3885b84d12bca631e9d4fb3a4d"


def test_libsignal_displayable_vector_from_both_sides() -> None:
    assert signal_safety_number(ALICE, ALICE_ID, BOB, BOB_ID) == DISPLAYABLE
    assert signal_safety_number(BOB, BOB_ID, ALICE, ALICE_ID) == DISPLAYABLE


def test_libsignal_logical_fingerprint_vectors() -> None:
    assert logical_fingerprint(ALICE, ALICE_ID)[:32].hex() == ALICE_LOGICAL
    assert logical_fingerprint(BOB, BOB_ID)[:32].hex() == BOB_LOGICAL


def test_a_different_stable_id_changes_the_number() -> None:
    assert signal_safety_number(ALICE, b"+141512222222", BOB, BOB_ID) != DISPLAYABLE


A = Identity.from_seed(bytes(range(32))).public_key
B = Identity.from_seed(bytes(range(32, 64))).public_key
C = Identity.from_seed(b"\x07" * 32).public_key


def test_frozen_tcall_vectors() -> None:
    assert A.hex() == "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"
    assert safety_number(A, B) == "644451518656812731187491904805757060930328642124423376071706"
    assert safety_number(A, C) == "314449441765736870762720397562644451518656812731187491904805"


def test_same_on_both_sides_and_different_for_different_keys() -> None:
    assert safety_number(A, B) == safety_number(B, A)
    assert len(safety_number(A, B)) == 60 and safety_number(A, B).isdigit()
    assert safety_number(A, B) != safety_number(A, C)
    assert safety_number(A, B) != safety_number(C, B)


def test_grouped_is_twelve_groups_of_five() -> None:
    text = grouped(DISPLAYABLE)
    lines = text.split("\n")
    assert len(lines) == 3
    groups = text.split()
    assert len(groups) == 12 and all(len(g) == 5 for g in groups)
    assert "".join(groups) == DISPLAYABLE
