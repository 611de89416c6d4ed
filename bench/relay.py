"""Relay benchmark: many clients on loopback, one `tcall serve` process, sealed-size payloads.

For each client count, the bench starts a fresh `tcall serve`, signs every client in through worker
processes (each holding its share of the links), then has them send ~2 KiB payloads to random other
clients at a fixed offered rate for a few seconds. Each payload carries its send time (CLOCK_MONOTONIC,
shared by all processes), so the receiver measures delivery latency end to end: client send, relay,
client receive, including the time a busy client process takes to read it.

Printed per client count: sign-in time, offered and delivered messages/s, p50 and p99 latency, lost
payloads, the relay's RSS (VmRSS from /proc) after sign-in and after the traffic, and the relay's CPU
use during the traffic (100 % = one core: the relay runs one event loop).

    python bench/relay.py [--clients 1000,5000,10000] [--rate 20000] [--seconds 5] [--workers 2]
"""

from __future__ import annotations

import argparse
import array
import asyncio
import multiprocessing
import multiprocessing.connection
import os
import random
import resource
import statistics
import subprocess
import sys
import time
from typing import Any

import aiohttp
import nacl.signing

from engine.relay import protocol

PAYLOAD_SIZE = 2048  # a sealed offer with its signature and SDP is about this size
CLK = time.CLOCK_MONOTONIC


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# --- one worker process: a share of the clients ---------------------------------------------------


class Worker:
    def __init__(
        self, url: str, count: int, seed: int, pipe: multiprocessing.connection.Connection
    ):
        self.url = url
        self.count = count
        self.seed = seed
        self.pipe = pipe
        self.links: list[aiohttp.ClientWebSocketResponse] = []
        self.mailboxes: list[str] = []
        self.latencies = array.array("d")
        self.received = 0
        self.errors = 0

    async def sign_in(
        self, session: aiohttp.ClientSession, index: int, gate: asyncio.Semaphore
    ) -> None:
        key = nacl.signing.SigningKey(self.seed.to_bytes(8, "big") + index.to_bytes(24, "big"))
        conn = protocol.ClientConnection(key)
        async with gate:
            ws = await session.ws_connect(self.url + protocol.WS_PATH, compress=0, max_msg_size=0)
            while not conn.ready:
                msg = await ws.receive()
                conn.receive(msg.data)
                for frame in conn.data_to_send():
                    await ws.send_bytes(frame)
        self.links.append(ws)
        self.mailboxes.append(conn.mailbox)

    async def read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.BINARY or msg.data[0] != protocol.Kind.DELIVER:
                self.errors += 1
                return
            now = time.clock_gettime_ns(CLK)
            sent = int.from_bytes(msg.data[1:9], "big")
            self.latencies.append((now - sent) / 1e6)
            self.received += 1

    async def send(self, targets: list[str], start: float, seconds: float, rate: float) -> int:
        rng = random.Random(self.seed)
        padding = os.urandom(PAYLOAD_SIZE - 8)
        frames = {to: protocol.encode_send(to, b"\0" * 8)[:17] for to in targets}
        sent = 0
        while (now := time.clock_gettime(CLK)) < start:
            await asyncio.sleep(min(0.01, start - now))
        end = start + seconds
        while (now := time.clock_gettime(CLK)) < end:
            due = int((now - start) * rate) - sent
            for _ in range(due):
                ws = self.links[rng.randrange(len(self.links))]
                stamp = time.clock_gettime_ns(CLK).to_bytes(8, "big")
                try:
                    await ws.send_bytes(frames[rng.choice(targets)] + stamp + padding)
                except (ConnectionError, RuntimeError):
                    self.errors += 1
                sent += 1
            await asyncio.sleep(0.001)
        return sent

    async def main(self) -> None:
        loop = asyncio.get_running_loop()
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as session:
            gate = asyncio.Semaphore(64)
            began = time.monotonic()
            await asyncio.gather(*(self.sign_in(session, i, gate) for i in range(self.count)))
            readers = [asyncio.create_task(self.read(ws)) for ws in self.links]
            self.pipe.send(("ready", self.mailboxes, time.monotonic() - began))
            _, targets, start, seconds, rate = await loop.run_in_executor(None, self.pipe.recv)
            cpu_before = time.process_time()
            sent = await self.send(targets, start, seconds, rate)
            await asyncio.sleep(1.0)  # let the last deliveries land
            cpu = time.process_time() - cpu_before
            latencies = self.latencies.tobytes()
            self.pipe.send(("done", sent, self.received, self.errors, cpu, latencies))
            for task in readers:
                task.cancel()
            await asyncio.gather(*(ws.close() for ws in self.links), return_exceptions=True)


def worker_main(
    url: str, count: int, seed: int, pipe: multiprocessing.connection.Connection
) -> None:
    raise_fd_limit()
    asyncio.run(Worker(url, count, seed, pipe).main())


# --- the relay process ------------------------------------------------------------------------------


class Relay:
    def __init__(self) -> None:
        code = "import sys; from tui.cli import entry; sys.argv[0] = 'tcall'; entry()"
        # The per-link rate limit stays on; the bench's links send ~20/s each at 1k clients.
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                code,
                "serve",
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

    def cpu_seconds(self) -> float:
        with open(f"/proc/{self.proc.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def run_one(clients: int, rate: float, seconds: float, workers: int) -> dict[str, Any]:
    relay = Relay()
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
        start = time.clock_gettime(CLK) + 0.5
        cpu_before = relay.cpu_seconds()
        for pipe in pipes:
            pipe.send(("go", mailboxes, start, seconds, rate / workers))
        sent = received = errors = 0
        client_cpu = 0.0
        latencies = array.array("d")
        for pipe in pipes:
            if not pipe.poll(seconds + 120):
                raise TimeoutError("workers did not finish")
            _, s, r, e, c, raw = pipe.recv()
            sent, received, errors, client_cpu = sent + s, received + r, errors + e, client_cpu + c
            latencies.frombytes(raw)
        cpu = (relay.cpu_seconds() - cpu_before) / (seconds + 1.0)
        rss_busy = relay.rss_mib()
        ordered = sorted(latencies)
        return {
            "clients": clients,
            "sign_in_s": sign_in,
            "offered": sent / seconds,
            "delivered": received / seconds,
            "p50": statistics.median(ordered) if ordered else float("nan"),
            "p99": ordered[int(len(ordered) * 0.99)] if ordered else float("nan"),
            "lost": sent - received,
            "errors": errors,
            "rss_idle": rss_idle,
            "rss_busy": rss_busy,
            "cpu": 100 * cpu,
            "client_cpu": 100 * client_cpu / (seconds + 1.0),
        }
    finally:
        for proc in procs:
            proc.join(5)
            if proc.is_alive():
                proc.kill()
        relay.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="1000,5000,10000")
    parser.add_argument("--rate", type=float, default=20000, help="offered messages/s, in total")
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--workers", type=int, default=2, help="client processes")
    args = parser.parse_args()
    raise_fd_limit()
    print(
        f"relay bench: {PAYLOAD_SIZE} B payloads, {args.seconds:g} s per run, "
        f"{args.workers} client processes, {os.cpu_count()} cores",
        flush=True,
    )
    header = (
        f"{'clients':>8} {'sign-in s':>9} {'offered/s':>10} {'deliv/s':>9} {'p50 ms':>8} "
        f"{'p99 ms':>8} {'lost':>6} {'RSS MiB':>15} {'relay CPU':>9} {'client CPU':>10}"
    )
    print(header, flush=True)
    for clients in (int(c) for c in args.clients.split(",")):
        r = run_one(clients, args.rate, args.seconds, args.workers)
        print(
            f"{r['clients']:>8} {r['sign_in_s']:>9.1f} {r['offered']:>10.0f} {r['delivered']:>9.0f} "
            f"{r['p50']:>8.2f} {r['p99']:>8.2f} {r['lost']:>6} "
            f"{r['rss_idle']:>6.0f} -> {r['rss_busy']:>5.0f} {r['cpu']:>8.0f}% {r['client_cpu']:>9.0f}%",
            flush=True,
        )


if __name__ == "__main__":
    main()
