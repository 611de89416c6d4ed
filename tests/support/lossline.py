"""A loss line for IP packets: what each TUN device hands us goes back into it, or is lost in bursts.

These kernels have no netem (../shared/MACHINE-FACTS.md); `iptables -m statistic` drops packets
independently, but real links (Wi-Fi, a congested queue) lose them in bursts. This is the
Gilbert-Elliott model with a lossless good state and a lossy bad one: from good a packet moves to
bad with probability p, from bad back to good with probability r, and every packet in bad is lost.
Bursts then last 1/r packets on average and the loss rate is p / (p + r). Each destination address
keeps its own state, so each direction of a call has its own bursts. Nothing is delayed.

    python -m tests.support.lossline LOSS MEAN_BURST SEED TUN [TUN ...]   (run inside the namespace)

It creates the devices, prints "ready" once they exist, and runs until killed; on SIGTERM it
prints {"passed": N, "lost": M} and exits. The caller brings the devices up and routes through them.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import select
import signal
import sys

from tests.support.delayline import open_tun


class GilbertElliott:
    def __init__(self, loss: float, mean_burst: float, seed: int) -> None:
        self.to_good = 1 / mean_burst
        self.to_bad = loss * self.to_good / (1 - loss) if loss < 1 else 1.0
        self.random = random.Random(seed)
        self.bad: dict[bytes, bool] = {}

    def lose(self, destination: bytes) -> bool:
        bad = self.bad.get(destination, False)
        flip = self.to_good if bad else self.to_bad
        if self.random.random() < flip:
            bad = not bad
        self.bad[destination] = bad
        return bad


def run(model: GilbertElliott, names: list[str]) -> None:
    fds = [open_tun(name) for name in names]
    counts = {"passed": 0, "lost": 0}

    def report(*_: object) -> None:
        print(json.dumps(counts), flush=True)
        sys.exit(0)

    signal.signal(signal.SIGTERM, report)
    print("ready", flush=True)
    while True:
        readable, _, _ = select.select(fds, [], [])
        for fd in readable:
            while True:
                try:
                    packet = os.read(fd, 65536)
                except BlockingIOError:
                    break
                if model.lose(packet[16:20]):  # the IPv4 destination address
                    counts["lost"] += 1
                    continue
                counts["passed"] += 1
                with contextlib.suppress(OSError):  # a device going away as the test ends
                    os.write(fd, packet)


if __name__ == "__main__":
    loss, burst, seed = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
    run(GilbertElliott(loss, burst, seed), sys.argv[4:])
