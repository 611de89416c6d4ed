"""Addresses: round trips, every garbling refused as a UsageError, and a QR code that decodes."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from tcall.engine.address import (
    _b32,
    _checksum,
    check_relay_url,
    format_address,
    parse_address,
    qr_lines,
)
from tcall.engine.errors import ExitCode, UsageError
from tcall.engine.identity import Identity

KEY = Identity.from_seed(bytes(range(32))).public_key
RELAY = "ws://127.0.0.1:7711"
FROZEN = "tcall:aoqqpp7tzyil4hlq3umoos6atft6jvrqtosq2xy53sdgiesvgg4a@ws://127.0.0.1:7711#awfmbsq4"


def _with_checksum(body: str) -> str:
    return f"{body}#{_checksum(body)}"


def test_frozen_format() -> None:
    assert format_address(KEY, RELAY) == FROZEN


@pytest.mark.parametrize("relay", [RELAY, "", "wss://relay.example.org/tcall", "ws://[::1]:7711"])
def test_round_trip(relay: str) -> None:
    parsed = parse_address(format_address(KEY, relay))
    assert (parsed.public_key, parsed.relay_url) == (KEY, relay)


def test_whitespace_and_case_from_copy_paste_are_forgiven() -> None:
    wrapped = "  " + FROZEN[:30] + "\n  " + FROZEN[30:] + "\n"
    assert parse_address(wrapped).public_key == KEY
    shouting = "TCALL:" + FROZEN[6:58].upper() + FROZEN[58:-8] + FROZEN[-8:].upper()
    assert parse_address(shouting).public_key == KEY


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "must start"),
        ("hello", "must start"),
        (FROZEN.replace("#", "!"), "checksum"),
        (FROZEN[:-1] + ("a" if FROZEN[-1] != "a" else "b"), "checksum"),
        (FROZEN[:20] + FROZEN[21:], "checksum"),
        (FROZEN.replace("7711", "7712"), "checksum"),
        (_with_checksum("tcall:" + _b32(KEY)[:-1]), "characters"),
        (_with_checksum("tcall:" + _b32(KEY) + "aa"), "characters"),
        (_with_checksum("tcall:" + "1" * 52), "base32"),
        (_with_checksum("tcall:" + _b32(b"\x00" * 32)), "Ed25519"),
        (_with_checksum("tcall:" + _b32(KEY) + "@http://x:1"), "ws://"),
        (_with_checksum("tcall:" + _b32(KEY) + "@ws://:7711"), "no host"),
        (_with_checksum("tcall:" + _b32(KEY) + "@ws://h:99999"), "port"),
        (_with_checksum("tcall:" + _b32(KEY) + "@ws://h:1?x=1"), "query"),
    ],
)
def test_garbled_addresses_are_refused(text: str, why: str) -> None:
    with pytest.raises(UsageError, match=why) as info:
        parse_address(text)
    assert str(info.value).startswith("garbled address: ")
    assert "\n" not in str(info.value)
    assert info.value.code == ExitCode.USAGE


def test_relay_url_checks() -> None:
    assert check_relay_url("wss://h.example/x") == "wss://h.example/x"
    for bad in ["ws://u:p@h:1", "ws://h:0", "tcp://h:1", "ws://h:1#f"]:
        with pytest.raises(ValueError):
            check_relay_url(bad)


def _decode_qr(lines: list[str]) -> str:
    # Light modules are drawn as ink; a scanner wants dark modules on white, so light -> 255.
    top = {"█": (1, 1), "▀": (1, 0), "▄": (0, 1), " ": (0, 0)}
    rows: list[list[int]] = []
    for line in lines:
        rows.append([top[ch][0] for ch in line])
        rows.append([top[ch][1] for ch in line])
    # OpenCV's detector misses some codes at some scales (this one at 8 px a module, not at 6 or
    # 10), as a phone camera might at one distance: the first scale that reads it wins.
    for scale in (6, 8, 10):
        image = (np.array(rows, dtype=np.uint8) * 255).repeat(scale, axis=0).repeat(scale, axis=1)
        text, _, _ = cv2.QRCodeDetector().detectAndDecode(np.pad(image, 32, constant_values=255))
        if text:
            return str(text)
    return ""


def test_qr_code_decodes_back_to_the_address() -> None:
    lines = qr_lines(FROZEN)
    assert len({len(line) for line in lines}) == 1
    assert set("".join(lines)) <= set("█▀▄ ")
    assert _decode_qr(lines) == FROZEN
