"""Services the end-to-end tests start for themselves: PulseAudio, redis-server, coturn and network
namespaces. Test workers run side by side (pytest-xdist), so nothing here has a fixed name or port:
runtime folders come from each worker's own tmp_path, ports from the system, namespace names from
the worker's pid."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.support.relays import free_port


@contextmanager
def pulseaudio(root: Path, realtime: bool = False) -> Iterator[dict[str, str]]:
    """A PulseAudio daemon of its own under `root`, whose null sink is the default speaker and its
    monitor the default microphone; yields the environment for processes that should use it.

    `realtime` runs the whole daemon at SCHED_RR where allowed (root), for a studio that stands in
    for sound hardware under CPU load. Only PulseAudio's sink threads are real-time by itself, and
    with two CPU hogs running, the studio's microphones stopped for 0.1-1.9 s at a time (in 9 of
    18 calls; both tcall processes' at the same instant, so in the daemon; "q overrun" in its
    log). At SCHED_RR: 1 call in 8. A sound card keeps its clock under load."""
    assert shutil.which("pulseaudio"), "pulseaudio is not installed (apt-get install pulseaudio)"
    (root / "home").mkdir()
    (root / "xdg").mkdir(mode=0o700)
    env = {**os.environ, "HOME": str(root / "home"), "XDG_RUNTIME_DIR": str(root / "xdg")}
    env.pop("PULSE_SERVER", None)
    priority = (
        ["chrt", "--rr", "5"] if realtime and os.geteuid() == 0 and shutil.which("chrt") else []
    )
    subprocess.run(
        [
            *priority,
            "pulseaudio",
            "-D",
            "-n",
            "--exit-idle-time=-1",
            "--disallow-exit",
            f"--log-target=file:{root / 'pulse.log'}",
            "--load=module-native-protocol-unix",
            "--load=module-null-sink sink_name=tcall_null rate=48000",
            "--load=module-always-sink",
        ],
        env=env,
        check=True,
        timeout=30,
    )
    try:
        deadline = time.monotonic() + 10
        while subprocess.run(["pactl", "info"], env=env, capture_output=True).returncode != 0:
            assert time.monotonic() < deadline, Path(root / "pulse.log").read_text()
            time.sleep(0.05)
        subprocess.run(["pactl", "set-default-sink", "tcall_null"], env=env, check=True)
        subprocess.run(["pactl", "set-default-source", "tcall_null.monitor"], env=env, check=True)
        yield env
    finally:
        subprocess.run(["pulseaudio", "--kill"], env=env, timeout=30)


@contextmanager
def redis_server(folder: Path) -> Iterator[str]:
    """A real redis-server on a free loopback port, keeping nothing on disk; yields its URL."""
    binary = shutil.which("redis-server")
    assert binary, "redis-server is needed: apt-get install redis-server"
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--save", "", "--appendonly", "no", "--port", str(port), "--bind", "127.0.0.1"],
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "HOME": str(folder)},
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), 0.2):
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def stop_process(process: subprocess.Popen[Any] | None, timeout: float = 10) -> None:
    """Ask `process` to end (SIGTERM); kill it if it has not within `timeout` s."""
    if process is None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _stun_answers(port: int) -> bool:
    request = b"\x00\x01\x00\x00\x21\x12\xa4\x42" + os.urandom(12)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.2)
        sock.sendto(request, ("127.0.0.1", port))
        try:
            return sock.recv(2048)[:2] == b"\x01\x01"
        except OSError:
            return False


@contextmanager
def coturn(folder: Path, user: str = "", password: str = "", secret: str = "") -> Iterator[int]:
    """A real coturn TURN server on loopback with one long-term user, or with `secret` for the
    TURN REST scheme (use-auth-secret, static-auth-secret); yields its port."""
    assert shutil.which("turnserver"), "coturn is not installed (apt-get install coturn)"
    port = free_port()
    low = 49152 + (port % 2000) * 8
    if secret:
        auth = ["--use-auth-secret", f"--static-auth-secret={secret}", "--userdb=:memory:"]
    else:
        auth = ["--lt-cred-mech", f"--user={user}:{password}"]
    process = subprocess.Popen(
        [
            "turnserver",
            "-n",
            "--listening-ip=127.0.0.1",
            "--relay-ip=127.0.0.1",
            f"--listening-port={port}",
            *auth,
            "--realm=tcall.test",
            "--no-tls",
            "--no-dtls",
            "--no-cli",
            "--allow-loopback-peers",
            f"--min-port={low}",
            f"--max-port={low + 7}",
            f"--pidfile={folder / 'turn.pid'}",
            "--log-file=stdout",
            "--simple-log",
            "--no-stdout-log",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not _stun_answers(port):
            assert process.poll() is None and time.monotonic() < deadline, "coturn did not start"
        yield port
    finally:
        process.terminate()
        process.wait(10)


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@contextmanager
def network_hosts(addresses: dict[str, str]) -> Iterator[dict[str, list[str]]]:
    """Test hosts, each a network namespace with one address (HOST -> "A.B.C.D", all in one /24),
    joined by a veth pair; yields the command prefix that runs a program on each host. Names
    carry this process's pid, so two test workers never share one."""
    tag = f"tcall{os.getpid() % 100000}"
    names = {host: f"{tag}{host}" for host in addresses}
    veth = (f"{tag}a", f"{tag}b")
    try:
        for ns in names.values():
            _ip("netns", "add", ns)
        _ip("link", "add", veth[0], "type", "veth", "peer", "name", veth[1])
        for (host, ns), dev in zip(names.items(), veth, strict=True):
            _ip("link", "set", dev, "netns", ns)
            _ip("-n", ns, "addr", "add", f"{addresses[host]}/24", "dev", dev)
            _ip("-n", ns, "link", "set", dev, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        yield {host: ["ip", "netns", "exec", ns] for host, ns in names.items()}
    finally:
        for ns in names.values():
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
