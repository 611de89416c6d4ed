"""Relay benchmark: many clients on loopback, one `tcall serve` process, sealed-size payloads.

For each client count, the bench starts a fresh `tcall serve` and signs every client in from worker
processes (each holding its share of the links). Then, for each offered rate in turn, the clients
send ~2 KiB payloads to random other clients for a few seconds. Each payload carries its send time
(CLOCK_MONOTONIC, shared by all processes), so the receiver measures delivery latency end to end:
client send, relay, client receive, including the time a busy client process takes to read it.

Printed per client count and rate: sign-in time, offered and delivered messages/s, p50 and p99
latency, payloads not delivered within 1 s of the end, client errors and lost links, the relay's RSS
(VmRSS from /proc) after sign-in and after the run; then CPU, in % of one core over the run: the
relay's (it runs one event loop, so 100 % is its ceiling), its CPU time per delivered message, user
+ kernel; the clients'; how long the relay was ready to run but waited for a core (schedstat); and
what every other process on the machine used ("others", from /proc/stat). The relay, the clients
and the others share the machine's cores: when their sum nears 100 % per core, latency measures the
queue for a CPU, not the relay.

With `--variant websockets` the relay is bench/relay_ws_variant.py instead: the same relay with
the `websockets` library's sans-I/O `ServerProtocol` as its WebSocket layer. `--variant both` runs
the two one after the other for each client count (a fresh relay and clients each), prints a line
for each, then a summary: relay CPU %, us per message, p50 and p99 of both side by side, with the
ratio of their CPU per message (websockets / ours).

    python bench/relay.py [--clients 1000,5000,10000] [--rates 5000,10000,20000] [--seconds 5]
                          [--workers 2] [--variant ours|websockets|both]
"""

from __future__ import annotations

import argparse
import array
import asyncio
import base64
import multiprocessing
import multiprocessing.connection
import os
import random
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, cast

import nacl.signing
import uvloop

from tcall.engine.relay import protocol
from tcall.engine.server.websocket import Opcode, client_frame

PAYLOAD_SIZE = 2048  # a sealed offer with its signature and SDP is about this size
CLK = time.CLOCK_MONOTONIC


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# --- one worker process: a share of the clients ---------------------------------------------------


class LeanLink(asyncio.Protocol):
    """A bare RFC 6455 client link, for the bench only.

    aiohttp's client spends more CPU per message than the relay does, and the clients share the
    relay's two cores: with it the bench would mostly measure its own clients. This one parses
    frames in `data_received`, with no task per link, and sends frames masked ahead of time: only
    the 8-byte send time is masked per message. The relay unmasks every byte whatever the mask, so
    its work is what a browser's frames would cost it.
    """

    def __init__(self, worker: Worker, host: str, key: nacl.signing.SigningKey) -> None:
        self.worker = worker
        self.host = host
        self.conn = protocol.ClientConnection(key, protocol.relay_origin(f"ws://{host}"))
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.upgraded = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        key = base64.b64encode(os.urandom(16)).decode()
        self.transport.write(
            f"GET {protocol.WS_PATH} HTTP/1.1\r\nHost: {self.host}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self.worker.links_lost += 1
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("link lost during sign-in"))

    def data_received(self, data: bytes) -> None:
        if self.buffer:
            data = self.buffer + data
            self.buffer = b""
        pos = 0
        if not self.upgraded:
            end = data.find(b"\r\n\r\n")
            if end < 0:
                self.buffer = data
                return
            if not data.startswith(b"HTTP/1.1 101"):
                raise ConnectionError(data[:40])
            pos = end + 4
            self.upgraded = True
        worker = self.worker
        end = len(data)
        while end - pos >= 2:
            opcode, size, start = data[pos] & 0x0F, data[pos + 1] & 0x7F, pos + 2
            if size == 126:
                size, start = int.from_bytes(data[pos + 2 : pos + 4], "big"), pos + 4
            elif size == 127:
                size, start = int.from_bytes(data[pos + 2 : pos + 10], "big"), pos + 10
            if end < start + size:
                break
            pos = start + size
            if opcode == Opcode.BINARY and self.conn.ready:
                if data[start] != protocol.Kind.DELIVER:
                    worker.errors += 1
                    continue
                sent = int.from_bytes(data[start + 1 : start + 9], "big")
                worker.latencies.append((time.clock_gettime_ns(CLK) - sent) / 1e6)
                worker.received += 1
            elif opcode == Opcode.BINARY:
                self.sign_in(data[start:pos])
            elif opcode == Opcode.PING:
                self.send(Opcode.PONG, data[start:pos])
        if pos < end:
            self.buffer = data[pos:]

    def send(self, opcode: int, payload: bytes) -> None:
        assert self.transport is not None
        self.transport.write(client_frame(opcode, payload, self.worker.mask))

    def sign_in(self, message: bytes) -> None:
        self.conn.receive(message)
        for out in self.conn.data_to_send():
            self.send(Opcode.BINARY, out)
        if self.conn.ready:
            self.ready.set_result(None)


class Worker:
    def __init__(
        self, url: str, count: int, seed: int, pipe: multiprocessing.connection.Connection
    ):
        self.url = url
        self.count = count
        self.seed = seed
        self.pipe = pipe
        self.links: list[LeanLink] = []
        self.latencies = array.array("d")
        self.received = 0
        self.errors = 0
        self.links_lost = 0
        self.mask = os.urandom(4)

    async def sign_in(self, index: int, gate: asyncio.Semaphore) -> None:
        key = nacl.signing.SigningKey(self.seed.to_bytes(8, "big") + index.to_bytes(24, "big"))
        host, port = self.url.removeprefix("ws://").rsplit(":", 1)
        async with gate:
            loop = asyncio.get_running_loop()
            _, link = await loop.create_connection(
                lambda: LeanLink(self, f"{host}:{port}", key), host, int(port)
            )
            await asyncio.wait_for(link.ready, 30)
        self.links.append(link)

    async def send(self, targets: list[str], start: float, seconds: float, rate: float) -> int:
        rng = random.Random(self.seed)
        mask = self.mask
        # A SEND frame is a header, the mask, then the masked message: kind and mailbox (17
        # bytes), the send time (8 bytes) and padding. All but the time is masked here, once.
        zeros = client_frame(
            Opcode.BINARY, protocol.encode_send(targets[0], bytes(PAYLOAD_SIZE)), mask
        )
        zeros = zeros[-PAYLOAD_SIZE:]
        stamp_mask, padding = int.from_bytes(zeros[:8], "big"), zeros[8:]
        prefixes = [
            client_frame(Opcode.BINARY, protocol.encode_send(to, zeros), mask)[:-PAYLOAD_SIZE]
            for to in targets
        ]
        transports = [cast(asyncio.Transport, link.transport) for link in self.links]
        sent = 0
        while (now := time.clock_gettime(CLK)) < start:
            await asyncio.sleep(min(0.01, start - now))
        end = start + seconds
        while (now := time.clock_gettime(CLK)) < end:
            for _ in range(int((now - start) * rate) - sent):
                stamp = (time.clock_gettime_ns(CLK) ^ stamp_mask).to_bytes(8, "big")
                frame = prefixes[rng.randrange(len(prefixes))] + stamp + padding
                transports[rng.randrange(len(transports))].write(frame)
                sent += 1
            await asyncio.sleep(0.001)  # uvloop has 1 ms timers: less would spin
        return sent

    async def main(self) -> None:
        loop = asyncio.get_running_loop()
        gate = asyncio.Semaphore(64)
        began = time.monotonic()
        await asyncio.gather(*(self.sign_in(i, gate) for i in range(self.count)))
        mailboxes = [link.conn.mailbox for link in self.links]
        self.pipe.send(("ready", mailboxes, time.monotonic() - began))
        while True:
            command = await loop.run_in_executor(None, self.pipe.recv)
            if command[0] == "stop":
                break
            _, targets, start, seconds, rate = command
            self.latencies, self.received, self.errors, self.links_lost = array.array("d"), 0, 0, 0
            cpu_before = time.process_time()
            sent = await self.send(targets, start, seconds, rate)
            await asyncio.sleep(1.0)  # let the last deliveries land
            cpu = time.process_time() - cpu_before
            errors = self.errors + self.links_lost
            self.pipe.send(("done", sent, self.received, errors, cpu, self.latencies.tobytes()))
        for link in self.links:
            if link.transport is not None:
                link.transport.close()


def worker_main(
    url: str, count: int, seed: int, pipe: multiprocessing.connection.Connection
) -> None:
    raise_fd_limit()
    uvloop.run(Worker(url, count, seed, pipe).main())


# --- the relay process ------------------------------------------------------------------------------


VARIANT = Path(__file__).with_name("relay_ws_variant.py")


class Relay:
    def __init__(self, variant: str = "ours") -> None:
        if variant == "ours":
            code = "import sys; from tcall.tui.cli import entry; sys.argv[0] = 'tcall'; entry()"
            command = [code, "serve"]
        else:  # the same relay with websockets' ServerProtocol as its WebSocket layer
            code = (
                "import runpy, sys; sys.argv[0] = 'tcall'; "
                f"runpy.run_path({str(VARIANT)!r}, run_name='__main__')"
            )
            command = [code]
        # The per-link rate limit stays on; the bench's links send ~20/s each at 1k clients.
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                *command,
                "--port",
                "0",
                "--rate",
                "500",
                "--burst",
                "1000",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip().rsplit(" ", 1)[-1]

    def rss_mib(self) -> float:
        with open(f"/proc/{self.proc.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return 0.0

    def cpu_seconds(self) -> tuple[float, float]:
        """The relay's CPU time so far: user and kernel, in seconds."""
        with open(f"/proc/{self.proc.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        tick = os.sysconf("SC_CLK_TCK")
        return int(fields[11]) / tick, int(fields[12]) / tick

    def cpu_wait_seconds(self) -> float:
        """How long the relay has been ready to run but waiting for a core (other processes')."""
        with open(f"/proc/{self.proc.pid}/schedstat") as schedstat:
            return int(schedstat.read().split()[1]) / 1e9

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def machine_busy_seconds() -> float:
    """CPU time all processes on the machine have used, summed over its cores (/proc/stat)."""
    with open("/proc/stat") as stat:
        fields = [int(x) for x in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle and iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def measure(
    relay: Relay,
    pipes: list[multiprocessing.connection.Connection],
    mailboxes: list[str],
    rate: float,
    seconds: float,
) -> dict[str, Any]:
    """One traffic run at `rate` messages/s over clients that are already signed in."""
    start = time.clock_gettime(CLK) + 0.5
    began, busy_before = time.monotonic(), machine_busy_seconds()
    cpu_before, wait_before = relay.cpu_seconds(), relay.cpu_wait_seconds()
    for pipe in pipes:
        pipe.send(("go", mailboxes, start, seconds, rate / len(pipes)))
    sent = received = errors = 0
    client_cpu = 0.0
    latencies = array.array("d")
    for pipe in pipes:
        if not pipe.poll(seconds + 120):
            raise TimeoutError("workers did not finish")
        _, s, r, e, c, raw = pipe.recv()
        sent, received, errors, client_cpu = sent + s, received + r, errors + e, client_cpu + c
        latencies.frombytes(raw)
    cpu_after, waited = relay.cpu_seconds(), relay.cpu_wait_seconds() - wait_before
    window, busy = time.monotonic() - began, machine_busy_seconds() - busy_before
    user, kernel = cpu_after[0] - cpu_before[0], cpu_after[1] - cpu_before[1]
    relay_cpu = user + kernel
    ordered = sorted(latencies)
    return {
        "offered": sent / seconds,
        "delivered": received / seconds,
        "p50": statistics.median(ordered) if ordered else float("nan"),
        "p99": ordered[int(len(ordered) * 0.99)] if ordered else float("nan"),
        "lost": sent - received,
        "errors": errors,
        "rss": relay.rss_mib(),
        "cpu": 100 * relay_cpu / window,
        "relay_us": 1e6 * relay_cpu / max(received, 1),
        "user_us": 1e6 * user / max(received, 1),
        "kernel_us": 1e6 * kernel / max(received, 1),
        "client_cpu": 100 * client_cpu / window,
        "relay_wait": 100 * waited / window,
        "others": 100 * max(0.0, busy - relay_cpu - client_cpu) / window,
        "load": os.getloadavg()[0],
    }


def run_clients(
    clients: int, rates: list[float], seconds: float, workers: int, variant: str = "ours"
) -> list[dict[str, Any]]:
    """Sign `clients` in to a fresh relay, then print one line per offered rate."""
    relay = Relay(variant)
    results = []
    ctx = multiprocessing.get_context("fork")
    pipes, procs = [], []
    try:
        for w in range(workers):
            parent, child = ctx.Pipe()
            share = clients // workers + (1 if w < clients % workers else 0)
            proc = ctx.Process(
                target=worker_main, args=(relay.url, share, w + 1, child), daemon=True
            )
            proc.start()
            pipes.append(parent)
            procs.append(proc)
        mailboxes: list[str] = []
        sign_in = 0.0
        for pipe in pipes:
            if not pipe.poll(300):
                raise TimeoutError("clients did not sign in within 300 s")
            _, boxes, took = pipe.recv()
            mailboxes += boxes
            sign_in = max(sign_in, took)
        rss_idle = relay.rss_mib()
        for rate in rates:
            r = measure(relay, pipes, mailboxes, rate, seconds)
            r["clients"], r["rate"], r["variant"], r["rss_idle"] = clients, rate, variant, rss_idle
            results.append(r)
            print(
                f"{variant[:4]:>4} {clients:>8} {sign_in:>9.1f} {r['offered']:>10.0f} {r['delivered']:>9.0f} "
                f"{r['p50']:>8.2f} {r['p99']:>8.2f} {r['lost']:>6} {r['errors']:>5} "
                f"{rss_idle:>6.0f} -> {r['rss']:>5.0f} {r['cpu']:>8.0f}% {r['relay_us']:>6.0f} "
                f"{r['user_us']:>4.0f}+{r['kernel_us']:<4.0f}"
                f"{r['client_cpu']:>9.0f}% {r['relay_wait']:>9.0f}% {r['others']:>6.0f}% "
                f"{r['load']:>5.1f}",
                flush=True,
            )
        for pipe in pipes:
            pipe.send(("stop",))
    finally:
        for proc in procs:
            proc.join(5)
            if proc.is_alive():
                proc.kill()
        relay.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="1000,5000,10000")
    parser.add_argument(
        "--rates", default="5000,10000,20000", help="offered messages/s in total, one run each"
    )
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--workers", type=int, default=2, help="client processes")
    parser.add_argument(
        "--variant",
        choices=("ours", "websockets", "both"),
        default="ours",
        help="the relay's WebSocket layer: engine/server/websocket.py, websockets, or both in turn",
    )
    args = parser.parse_args()
    raise_fd_limit()
    print(
        f"relay bench: {PAYLOAD_SIZE} B payloads, {args.seconds:g} s per run, "
        f"{args.workers} client processes, {os.cpu_count()} cores",
        flush=True,
    )
    header = (
        f"{'ws':>4} {'clients':>8} {'sign-in s':>9} {'offered/s':>10} {'deliv/s':>9} {'p50 ms':>8} "
        f"{'p99 ms':>8} {'lost':>6} {'errs':>5} {'RSS MiB':>15} {'relay CPU':>9} {'us/msg':>6} "
        f"{'usr+sys':>9}"
        f"{'client CPU':>10} {'relay wait':>10} {'others':>7} {'load':>5}"
    )
    print(header, flush=True)
    rates = [float(rate) for rate in args.rates.split(",")]
    variants = ("ours", "websockets") if args.variant == "both" else (args.variant,)
    results: list[dict[str, Any]] = []
    for clients in (int(c) for c in args.clients.split(",")):
        for variant in variants:
            results += run_clients(clients, rates, args.seconds, args.workers, variant)
    if len(variants) == 2:
        print_comparison(results)


def print_comparison(results: list[dict[str, Any]]) -> None:
    """Both relays side by side, per client count and rate: ours / websockets."""
    print(
        "\nours / websockets, same run: relay CPU % (one core), us per message, p50 ms, p99 ms, "
        "delivered/s, RSS MiB after; ratio = websockets' CPU per message / ours",
        flush=True,
    )
    print(
        f"{'clients':>8} {'msg/s':>6} {'relay CPU %':>11} {'us/msg':>11} {'p50 ms':>11} "
        f"{'p99 ms':>13} {'deliv/s':>13} {'RSS':>9} {'ratio':>6}"
    )
    by_key = {(r["variant"], r["clients"], r["rate"]): r for r in results}
    for (variant, clients, rate), a in by_key.items():
        b = by_key.get(("websockets", clients, rate))
        if variant != "ours" or b is None:
            continue
        print(
            f"{clients:>8} {rate:>6.0f} {a['cpu']:>5.0f}/{b['cpu']:<5.0f} "
            f"{a['relay_us']:>5.0f}/{b['relay_us']:<5.0f} {a['p50']:>5.2f}/{b['p50']:<5.2f} "
            f"{a['p99']:>6.2f}/{b['p99']:<6.2f} {a['delivered']:>6.0f}/{b['delivered']:<6.0f} "
            f"{a['rss']:>4.0f}/{b['rss']:<4.0f} {b['relay_us'] / a['relay_us']:>6.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
