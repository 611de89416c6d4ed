"""A delay line for IP packets: what each TUN device hands us comes back into it `delay` ms later.

These kernels have no netem (../shared/MACHINE-FACTS.md), so the public namespace of
tests/support/nat.py routes the packets it should delay through TUN devices that this process holds
open; the kernel then routes each one again as if it had just arrived on the TUN device. Order is
kept per device and nothing is dropped, so it adds delay and nothing else.

    python -m tests.support.delayline DELAY_MS TUN [TUN ...]   (run inside the namespace)

It creates the devices (IFF_TUN, no packet info), prints "ready" once they exist, and runs until
killed. The caller brings the devices up and routes through them.
"""

from __future__ import annotations

import contextlib
import fcntl
import heapq
import itertools
import os
import select
import struct
import sys
import time

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000


def open_tun(name: str) -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


def run(delay_s: float, names: list[str]) -> None:
    fds = [open_tun(name) for name in names]
    print("ready", flush=True)
    due: list[tuple[float, int, int, bytes]] = []  # (release time, order, fd, packet)
    order = itertools.count()
    while True:
        timeout = max(0.0, due[0][0] - time.monotonic()) if due else None
        readable, _, _ = select.select(fds, [], [], timeout)
        now = time.monotonic()
        for fd in readable:
            while True:
                try:
                    packet = os.read(fd, 65536)
                except BlockingIOError:
                    break
                heapq.heappush(due, (now + delay_s, next(order), fd, packet))
        now = time.monotonic()
        while due and due[0][0] <= now:
            _, _, fd, packet = heapq.heappop(due)
            with contextlib.suppress(OSError):  # a device going away as the test ends
                os.write(fd, packet)


if __name__ == "__main__":
    run(float(sys.argv[1]) / 1000, sys.argv[2:])
