"""A host that roams: its address on tests/support/lossy_link.py's network changes mid-call."""

from __future__ import annotations

import subprocess

from tests.support.lossy_link import ALICE_IP, ROUTER_A_IP, Link

NEW_ALICE_IP = "192.0.2.3"


def move_alice(link: Link) -> None:
    """alice's host gets a new address and loses the old one for good (her router stays the
    same), as on a Wi-Fi roam. The old one goes first: deleting it afterwards would take a
    secondary address in the same subnet with it."""
    out = subprocess.run(
        [*link.alice, "ip", "-o", "-4", "addr", "show"], capture_output=True, text=True, check=True
    ).stdout
    device = next(line.split()[1] for line in out.splitlines() if ALICE_IP in line)
    for command in (
        ["ip", "addr", "del", f"{ALICE_IP}/24", "dev", device],
        ["ip", "addr", "add", f"{NEW_ALICE_IP}/24", "dev", device],
        ["ip", "route", "replace", "default", "via", ROUTER_A_IP],
    ):
        subprocess.run([*link.alice, *command], check=True, capture_output=True)


def old_address_answers(link: Link) -> bool:
    """Whether anything still answers at alice's old address (from bob's host)."""
    done = subprocess.run(
        [*link.bob, "ping", "-c", "1", "-W", "1", ALICE_IP], capture_output=True, text=True
    )
    return done.returncode == 0
