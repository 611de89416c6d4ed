"""Homes behind NAT routers and a public network, in network namespaces the test makes itself.

    [host 0] --lan-- [router 0] --wan--+
                                       +-- the public network (one namespace that routes between the
    [host 1] --lan-- [router 1] --wan--+   routers and holds 203.0.113.1: relay, coturn)

Only documentation ranges: the public network's own address is 203.0.113.1, router i's public address
203.0.113.10+i, and home i's LAN 198.51.100.64*i/26 (router .1, host .2 of it). The public namespace
sends anything else towards a gateway that never answers, which loses it silently, as the internet would (so coturn
never sees ENETUNREACH; ../shared/MACHINE-FACTS.md).

The routers are modelled on home routers (MACHINE-FACTS, "NAT in network namespaces"): they
masquerade the LAN and drop every unsolicited packet from outside (INPUT and FORWARD accept only
replies), so hole punching works only as it does on the internet. Kinds of router:

- "cone": endpoint-independent mapping (MASQUERADE keeps the source port when it can);
- "symmetric": a new port for each destination (`--random-fully`): STUN alone cannot get through;
- "no_udp": cone, and every UDP packet from the LAN is dropped: only TCP leaves the home.

`delay_ms`: these kernels have no netem, so the public namespace routes every packet it sends to a
router, forwarded or its own, through a delay line (tests/support/delayline.py) that holds it
`delay_ms`. Home to home then has 2 x delay_ms of round trip (20 ms: 40 ms), home to the relay or
coturn delay_ms.

Names carry this process's pid, so two test workers never share a namespace or an interface.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

PUBLIC_IP = "203.0.113.1"
KINDS = ("cone", "symmetric", "no_udp")
_GATEWAY = "203.0.113.254"  # never answers
_DELAYED = 100  # the routing table that sends packets for the routers through the delay line


def home_ip(index: int) -> str:
    """The private address of home `index`'s host."""
    return f"198.51.100.{64 * index + 2}"


def router_ip(index: int) -> str:
    """Home `index`'s router's public address."""
    return f"203.0.113.{10 + index}"


@dataclass
class Network:
    public: list[str]  # the command prefix that runs a program on the public network
    homes: list[list[str]] = field(default_factory=list)  # the same, on each home's host
    routers: list[list[str]] = field(default_factory=list)

    def run(self, where: list[str], *command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*where, *command], check=True, capture_output=True, text=True)


def _run(*command: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}: {result.stderr.strip()}")


def _router_rules(kind: str) -> list[list[str]]:
    masquerade = ["-t", "nat", "-A", "POSTROUTING", "-o", "wan", "-j", "MASQUERADE"]
    if kind == "symmetric":
        masquerade.append("--random-fully")
    rules = [masquerade]
    for chain in ("INPUT", "FORWARD"):
        rules.append(
            ["-A", chain, "-i", "wan", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED"]
            + ["-j", "ACCEPT"]
        )
        rules.append(["-A", chain, "-i", "wan", "-j", "DROP"])
    if kind == "no_udp":
        rules.append(["-I", "FORWARD", "-i", "lan", "-p", "udp", "-j", "DROP"])
    return rules


@contextmanager
def nat_network(kinds: list[str], delay_ms: float = 0) -> Iterator[Network]:
    """A public network and one home per entry of `kinds` (each a router kind, see above)."""
    assert all(kind in KINDS for kind in kinds), kinds
    tag = f"n{os.getpid() % 100000}"
    public = f"{tag}pub"
    names = [public]
    delay_line: subprocess.Popen[str] | None = None
    try:
        _run("ip", "netns", "add", public)
        in_public = ["ip", "netns", "exec", public]
        _run("ip", "-n", public, "link", "set", "lo", "up")
        _run("ip", "-n", public, "addr", "add", f"{PUBLIC_IP}/32", "dev", "lo")
        # The default route: a gateway nobody answers for, behind a link that goes nowhere.
        _run("ip", "-n", public, "link", "add", "void", "type", "veth", "peer", "name", "nowhere")
        for device in ("void", "nowhere"):
            _run("ip", "-n", public, "link", "set", device, "up")
        _run(
            "ip", "-n", public, "route", "add", "default", "via", _GATEWAY, "dev", "void", "onlink"
        )
        for setting in ("ip_forward=1", "conf.all.rp_filter=0", "conf.default.rp_filter=0"):
            _run(*in_public, "sysctl", "-q", "-w", f"net.ipv4.{setting}")
        network = Network(in_public)
        for index, kind in enumerate(kinds):
            router, host = f"{tag}r{index}", f"{tag}h{index}"
            names += [router, host]
            for ns in (router, host):
                _run("ip", "netns", "add", ns)
                _run("ip", "-n", ns, "link", "set", "lo", "up")
            wan, port, lan, eth = (f"{tag}{x}{index}" for x in "wpla")
            # wan: router <-> the public network, a point-to-point link
            _run("ip", "link", "add", wan, "type", "veth", "peer", "name", port)
            _run("ip", "link", "set", wan, "netns", router)
            _run("ip", "link", "set", port, "netns", public)
            _run("ip", "-n", router, "link", "set", wan, "name", "wan")
            _run("ip", "-n", public, "link", "set", port, "up")
            _run("ip", "-n", public, "route", "add", f"{router_ip(index)}/32", "dev", port)
            _run("ip", "-n", router, "addr", "add", f"{router_ip(index)}/32", "dev", "wan")
            _run("ip", "-n", router, "link", "set", "wan", "up")
            _run("ip", "-n", router, "route", "add", f"{PUBLIC_IP}/32", "dev", "wan")
            _run("ip", "-n", router, "route", "add", "default", "via", PUBLIC_IP, "dev", "wan")
            # lan: router <-> host
            lan_net = 64 * index
            _run("ip", "link", "add", lan, "type", "veth", "peer", "name", eth)
            _run("ip", "link", "set", lan, "netns", router)
            _run("ip", "link", "set", eth, "netns", host)
            _run("ip", "-n", router, "link", "set", lan, "name", "lan")
            _run("ip", "-n", router, "addr", "add", f"198.51.100.{lan_net + 1}/26", "dev", "lan")
            _run("ip", "-n", router, "link", "set", "lan", "up")
            _run("ip", "-n", host, "addr", "add", f"{home_ip(index)}/26", "dev", eth)
            _run("ip", "-n", host, "link", "set", eth, "up")
            _run("ip", "-n", host, "route", "add", "default", "via", f"198.51.100.{lan_net + 1}")
            in_router = ["ip", "netns", "exec", router]
            _run(*in_router, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
            for rule in _router_rules(kind):
                _run(*in_router, "iptables", *rule)
            network.homes.append(["ip", "netns", "exec", host])
            network.routers.append(in_router)
        if delay_ms:
            delay_line = _start_delay_line(public, len(kinds), delay_ms)
        yield network
    finally:
        if delay_line is not None:
            delay_line.kill()
            delay_line.wait()
        for ns in reversed(names):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def _start_delay_line(public: str, routers: int, delay_ms: float) -> subprocess.Popen[str]:
    """Route every packet the public namespace sends to a router, forwarded or its own, through
    the TUN device `dlout`, where the delay line holds it `delay_ms`."""
    in_public = ["ip", "netns", "exec", public]
    line = subprocess.Popen(
        [*in_public, sys.executable, "-m", "tests.support.delayline", str(delay_ms), "dlout"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert line.stdout is not None and line.stdout.readline().strip() == "ready"
    _run("ip", "-n", public, "link", "set", "dlout", "up")
    for setting in ("rp_filter=0", "accept_local=1"):  # it hands back packets from 203.0.113.1
        _run(*in_public, "sysctl", "-q", "-w", f"net.ipv4.conf.dlout.{setting}")
    table = str(_DELAYED)
    for index in range(routers):
        _run(
            "ip",
            "-n",
            public,
            "route",
            "add",
            f"{router_ip(index)}/32",
            "dev",
            "dlout",
            "table",
            table,
        )
    # Anything but what comes back out of the delay line. Local delivery (the relay, coturn, ARP)
    # stays first, in the local table: what a router sends in is not delayed, what goes out is.
    _run("ip", "-n", public, "rule", "add", "pref", "100", "not", "iif", "dlout", "lookup", table)
    return line
