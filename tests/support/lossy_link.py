"""Two hosts and a router between them, in network namespaces, where the router can lose packets.

    [alice 192.0.2.2] --a-- [router 192.0.2.1 | 198.51.100.1] --b-- [bob 198.51.100.2]

Documentation ranges only. The relay runs on the router (192.0.2.1), so signaling crosses no lossy
path; the loss applies to UDP the router forwards (media, RTCP, ICE), in both directions:

- `cut()`: the router's port towards alice goes down (everything of hers, signaling too);
- `random_loss(p)`: `iptables -m statistic --mode random --probability p -j DROP` on FORWARD;
- `burst_loss(rate, mean_burst)`: forwarded UDP is routed through a TUN device held by
  tests/support/lossline.py (Gilbert-Elliott), which hands back the packets it keeps.

Names carry this process's pid, so two test workers never share a namespace or an interface.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import os
import random
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

ALICE_IP, ROUTER_A_IP = "192.0.2.2", "192.0.2.1"
BOB_IP, ROUTER_B_IP = "198.51.100.2", "198.51.100.1"
_LOSSY = "101"  # the routing table that sends forwarded UDP into the loss line
T = TypeVar("T")


def _run(*command: str) -> str:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}: {result.stderr.strip()}")
    return result.stdout


def _random_drop(probability: float) -> list[str]:
    return [
        "-m",
        "statistic",
        "--mode",
        "random",
        "--probability",
        f"{probability:.4f}",
        "-j",
        "DROP",
    ]


@contextmanager
def _iptables(prefix: list[str], rule: list[str]) -> Iterator[None]:
    """`rule` appended (run with `prefix`, in a namespace) while the block runs."""
    _run(*prefix, "iptables", "-A", *rule)
    try:
        yield
    finally:
        _run(*prefix, "iptables", "-D", *rule)


@dataclass
class Link:
    alice: list[str]  # the command prefix that runs a program on alice's host
    bob: list[str]
    router: list[str]
    router_ns: str
    ports: tuple[str, str]  # the router's interfaces towards alice and bob

    @contextmanager
    def cut(self) -> Iterator[None]:
        """alice's side of the router goes down while the block runs, as a Wi-Fi drop does: her
        media and her relay connection alike get nowhere (the router's routes come back with
        the port)."""
        _run("ip", "-n", self.router_ns, "link", "set", self.ports[0], "down")
        try:
            yield
        finally:
            _run("ip", "-n", self.router_ns, "link", "set", self.ports[0], "up")

    @contextmanager
    def random_loss(self, probability: float) -> Iterator[None]:
        if probability <= 0:
            yield
            return
        with _iptables(self.router, ["FORWARD", "-p", "udp", *_random_drop(probability)]):
            yield

    @contextmanager
    def burst_loss(
        self, rate: float, mean_burst: float, seed: int | None = None
    ) -> Iterator[dict[str, int]]:
        """Loses `rate` of forwarded UDP packets in bursts of `mean_burst` on average; yields
        the line's counts ({"passed", "lost"}), filled in when the block ends. A call's 1,300
        audio packets are few for bursts: one realisation lost 7.3% at a 10% rate, so each call
        draws its own unless `seed` is given (and the bench reports what was lost)."""
        seed = random.randrange(2**31) if seed is None else seed
        line = subprocess.Popen(
            [*self.router, sys.executable, "-m", "tests.support.lossline"]
            + [str(rate), str(mean_burst), str(seed), "lossy"],
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parents[2],
        )
        counts: dict[str, int] = {}
        rules = [["iif", port, "ipproto", "udp", "lookup", _LOSSY] for port in self.ports]
        try:
            assert line.stdout is not None and line.stdout.readline().strip() == "ready"
            _run("ip", "-n", self.router_ns, "link", "set", "lossy", "up")
            for setting in ("rp_filter=0", "accept_local=1"):
                _run(*self.router, "sysctl", "-q", "-w", f"net.ipv4.conf.lossy.{setting}")
            _run(
                "ip",
                "-n",
                self.router_ns,
                "route",
                "add",
                "default",
                "dev",
                "lossy",
                "table",
                _LOSSY,
            )
            for rule in rules:
                _run("ip", "-n", self.router_ns, "rule", "add", *rule)
            yield counts
        finally:
            for rule in rules:
                subprocess.run(
                    ["ip", "-n", self.router_ns, "rule", "del", *rule], capture_output=True
                )
            line.terminate()
            out, _ = line.communicate(timeout=10)
            if out.strip():
                counts.update(json.loads(out.strip().splitlines()[-1]))

    @contextmanager
    def random_loss_towards(self, host: str, probability: float) -> Iterator[None]:
        """Like random_loss, on one side only: UDP the router forwards to `host` ("alice" or
        "bob") is lost at `probability`; what `host` sends gets through."""
        port = self.ports[0 if host == "alice" else 1]
        with _iptables(
            self.router, ["FORWARD", "-o", port, "-p", "udp", *_random_drop(probability)]
        ):
            yield

    @contextmanager
    def cap(self, kbit: int, buffer_ms: int = 200) -> Iterator[None]:
        """The router forwards at most `kbit` kbit/s each way while the block runs (a token
        bucket, `tc ... tbf`, on both of its ports; netem is missing on these kernels): what a
        thin uplink does. A packet that would wait more than `buffer_ms` in the queue is dropped,
        as a modem's buffer overflows."""
        shape = ["rate", f"{kbit}kbit", "burst", "3000", "latency", f"{buffer_ms}ms"]
        for port in self.ports:
            _run(*self.router, "tc", "qdisc", "add", "dev", port, "root", "tbf", *shape)
        try:
            yield
        finally:
            for port in self.ports:
                subprocess.run(
                    [*self.router, "tc", "qdisc", "del", "dev", port, "root"], capture_output=True
                )


@contextmanager
def lossy_link() -> Iterator[Link]:
    tag = f"ll{os.getpid() % 100000}"
    names = {role: f"{tag}{role[0]}" for role in ("alice", "router", "bob")}
    try:
        for ns in names.values():
            _run("ip", "netns", "add", ns)
            _run("ip", "-n", ns, "link", "set", "lo", "up")
        router = names["router"]
        ports = (f"{tag}ra", f"{tag}rb")
        for host, port, host_ip, router_ip in (
            ("alice", ports[0], ALICE_IP, ROUTER_A_IP),
            ("bob", ports[1], BOB_IP, ROUTER_B_IP),
        ):
            ns, eth = names[host], f"{tag}{host[0]}e"
            _run("ip", "link", "add", port, "type", "veth", "peer", "name", eth)
            _run("ip", "link", "set", port, "netns", router)
            _run("ip", "link", "set", eth, "netns", ns)
            _run("ip", "-n", router, "addr", "add", f"{router_ip}/24", "dev", port)
            _run("ip", "-n", router, "link", "set", port, "up")
            _run("ip", "-n", ns, "addr", "add", f"{host_ip}/24", "dev", eth)
            _run("ip", "-n", ns, "link", "set", eth, "up")
            _run("ip", "-n", ns, "route", "add", "default", "via", router_ip)
        in_router = ["ip", "netns", "exec", router]
        for setting in ("ip_forward=1", "conf.all.rp_filter=0", "conf.default.rp_filter=0"):
            _run(*in_router, "sysctl", "-q", "-w", f"net.ipv4.{setting}")
        yield Link(
            alice=["ip", "netns", "exec", names["alice"]],
            bob=["ip", "netns", "exec", names["bob"]],
            router=in_router,
            router_ns=router,
            ports=ports,
        )
    finally:
        for ns in names.values():
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


# --- one namespace, loopback only: a browser peer and tcall side by side --------------------------

_CLONE_NEWNET = 0x40000000


@dataclass
class Loopback:
    """A network namespace with only its loopback up, for a call between two peers on 127.x
    addresses (Chromium keeps only 127.0.0.1 candidates): loss on the way to one address is an
    iptables rule inside the namespace, so nothing outside it is touched."""

    name: str

    @contextmanager
    def random_loss_to(self, address: str, probability: float) -> Iterator[None]:
        """UDP to `address` is lost at `probability` (everything sent to it on loopback)."""
        rule = ["INPUT", "-d", address, "-p", "udp", *_random_drop(probability)]
        with _iptables(["ip", "netns", "exec", self.name], rule):
            yield

    def run(self, main: Callable[[], Awaitable[T]]) -> T:
        """`asyncio.run(main())` in a thread that has entered the namespace (setns: a thread's own
        namespace, so this process and its other threads stay where they are). Sockets opened
        there and processes started from there (Chromium) are inside it."""
        result: list[T] = []
        errors: list[BaseException] = []

        def body() -> None:
            try:
                fd = os.open(f"/run/netns/{self.name}", os.O_RDONLY)
                try:
                    if _libc.setns(fd, _CLONE_NEWNET) != 0:
                        raise OSError(ctypes.get_errno(), f"setns into {self.name} failed")
                finally:
                    os.close(fd)
                result.append(asyncio.run(main()))
            except BaseException as exc:  # handed to the caller's thread
                errors.append(exc)

        thread = threading.Thread(target=body, name=f"in {self.name}")
        thread.start()
        thread.join()
        if errors:
            raise errors[0]
        return result[0]


_libc = ctypes.CDLL(None, use_errno=True)


@contextmanager
def loopback_namespace() -> Iterator[Loopback]:
    name = f"lb{os.getpid() % 100000}"
    try:
        _run("ip", "netns", "add", name)
        _run("ip", "-n", name, "link", "set", "lo", "up")
        yield Loopback(name)
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
