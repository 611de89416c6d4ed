"""A relay that misbehaves on purpose, for end-to-end tests: same protocol, loopback only.

It runs the real `RelayServer` in its own thread and event loop, so sync tests, async tests and
`tcall` subprocesses can all use it. Every payload a client sends goes through `on_route(to_mailbox,
payload)`, which returns what to pass on instead: nothing (drop), the same thing twice (replay),
something else (substitute), or payloads it kept from before (reorder). `received` records what the
clients sent and `routed` what the relay passed on. With no `on_route` it is an honest relay.

    with HostileRelay(on_route=replay(2)) as relay:
        ...connect clients to relay.url...
        assert len(relay.routed) == 2 * len(relay.received)
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from tcall.engine.identity import Identity
from tcall.engine.server.server import RelayConfig, RelayServer, run
from tcall.engine.wire import Message, ReplayGuard, SenderStatus, open_message

OnRoute = Callable[[str, bytes], list[tuple[str, bytes]]]


@dataclass(frozen=True)
class Routed:
    sender: str  # mailbox of the link the payload came from ("" for injected payloads)
    to_mailbox: str
    payload: bytes


class _Server(RelayServer):
    def __init__(self, owner: HostileRelay, config: RelayConfig) -> None:
        super().__init__(config)
        self._owner = owner

    def route(self, sender: str, to_mailbox: str, payload: bytes) -> None:
        owner = self._owner
        owner.received.append(Routed(sender, to_mailbox, payload))
        hook = owner.on_route
        for target, data in hook(to_mailbox, payload) if hook else [(to_mailbox, payload)]:
            owner.routed.append(Routed(sender, target, data))
            super().route(sender, target, data)


class HostileRelay:
    """A relay on 127.0.0.1 that lets the test decide what each payload becomes."""

    def __init__(self, on_route: OnRoute | None = None, config: RelayConfig | None = None) -> None:
        self.on_route = on_route  # may be swapped mid-test
        self.received: list[Routed] = []
        self.routed: list[Routed] = []
        self.url = ""
        self._config = config or RelayConfig(hold_seconds=5.0)
        self._server: _Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None

    @property
    def server(self) -> RelayServer:
        assert self._server is not None
        return self._server

    def start(self) -> HostileRelay:
        self._thread = threading.Thread(target=self._main, name="hostile-relay", daemon=True)
        self._thread.start()
        if not self._started.wait(10):
            raise RuntimeError("hostile relay did not start")
        if self._error is not None:
            raise self._error
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> HostileRelay:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def inject(self, to_mailbox: str, payload: bytes) -> None:
        """Deliver a payload no client sent, as a relay that forges traffic would."""
        assert self._loop is not None and self._server is not None
        server = self._server

        async def forge() -> None:
            server.route("", to_mailbox, payload)

        asyncio.run_coroutine_threadsafe(forge(), self._loop).result(5)

    def wait_received(self, count: int, timeout: float = 5.0) -> list[Routed]:
        """Block until clients have sent at least `count` payloads; returns them."""
        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"relay saw {len(self.received)} payloads, not {count}")
            time.sleep(0.01)
        return list(self.received)

    def _main(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._server = _Server(self, self._config)

        def listening(url: str) -> None:
            self.url = url
            self._started.set()

        try:
            await run("127.0.0.1", 0, self._server, listening, self._stop)
        except BaseException as exc:
            self._error = exc
            self._started.set()


def peek(identity: Identity, payload: bytes) -> Message | None:
    """Open a payload as its recipient would, without disturbing anything: what an omniscient
    relay, one that holds the recipient's key, reads."""
    try:
        return open_message(
            identity,
            payload,
            time.time(),
            ReplayGuard(),
            lambda key: SenderStatus.unknown(),
            allow_unknown=True,
        ).message
    except Exception:
        return None


# --- ready-made misbehaviours -------------------------------------------------------------------


def replay(times: int = 2) -> OnRoute:
    """Pass every payload on `times` times."""
    return lambda to, payload: [(to, payload)] * times


def drop(predicate: Callable[[str, bytes], bool] = lambda to, payload: True) -> OnRoute:
    """Swallow the payloads `predicate` picks (all of them by default)."""
    return lambda to, payload: [] if predicate(to, payload) else [(to, payload)]


def substitute(replace: Callable[[str, bytes], bytes]) -> OnRoute:
    """Pass on `replace(to, payload)` in place of each payload."""
    return lambda to, payload: [(to, replace(to, payload))]


class Reorder:
    """Hold back every `group` payloads to one mailbox, then pass them on in reverse order."""

    def __init__(self, group: int = 2) -> None:
        self.group = group
        self._held: dict[str, list[bytes]] = defaultdict(list)

    def __call__(self, to: str, payload: bytes) -> list[tuple[str, bytes]]:
        held = self._held[to]
        held.append(payload)
        if len(held) < self.group:
            return []
        self._held[to] = []
        return [(to, data) for data in reversed(held)]


class ReplayLater:
    """Pass everything on, and after `after` more payloads to a mailbox, replay the first one again."""

    def __init__(self, after: int = 1) -> None:
        self.after = after
        self._first: dict[str, bytes] = {}
        self._count: dict[str, int] = defaultdict(int)

    def __call__(self, to: str, payload: bytes) -> list[tuple[str, bytes]]:
        out = [(to, payload)]
        first = self._first.setdefault(to, payload)
        self._count[to] += 1
        if self._count[to] == self.after + 1:
            out.append((to, first))
        return out


def chain(*hooks: OnRoute) -> OnRoute:
    """Apply hooks one after another, each to what the previous one passed on."""

    def apply(to: str, payload: bytes) -> list[tuple[str, bytes]]:
        items = [(to, payload)]
        for hook in hooks:
            items = [out for item in items for out in hook(*item)]
        return items

    return apply
