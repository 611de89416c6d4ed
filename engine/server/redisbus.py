"""Scale-out: several relay nodes share routing through Redis pub/sub (redis-py's asyncio client).

Each node subscribes to one channel per mailbox connected to it, `tcall:mb:<mailbox>`. A node
that has a payload for a mailbox it does not hold offers it to the bus, which publishes it on that
channel; Redis answers how many nodes received it, and zero means the mailbox is offline, so the
sending node holds it itself. Offers go out in order through one pipeline, many per round trip, so
routing never waits for Redis and payloads to one mailbox keep their order.

Held payloads stay on the node that accepted them. When a mailbox signs in, its node takes a claim
number (INCR `tcall:claims`) and announces mailbox and number on `tcall:online` once it is
subscribed. Every other node then publishes what it holds for that mailbox and closes its own link
to it if that link's claim is older: one link per mailbox across all nodes.

Redis sees mailbox ids and sealed payloads, exactly what a relay sees, and is told to keep nothing:
pub/sub is not stored. Run it on loopback or a private network, like the relay nodes.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions

from tcall.engine.errors import ConfigError

_MAILBOX_PREFIX = b"tcall:mb:"
_ONLINE = b"tcall:online"
_CLAIMS = b"tcall:claims"  # a counter, the only key tcall writes: it orders sign-ins across nodes
_NODE_ID_SIZE = 16
_MAX_OUTBOX = 65536  # offers waiting for Redis; past this the relay drops, as with a full hold
_BATCH = 512

log = logging.getLogger("tcall.relay")

OnPayload = Callable[[str, bytes], None]
OnUnclaimed = Callable[[str, bytes, str], None]  # mailbox, payload, the sender's mailbox
OnOnline = Callable[[str, int], Awaitable[None]]


class RedisBus:
    """One node's link to the shared Redis; the callbacks are how it reaches its node."""

    def __init__(
        self,
        url: str,
        on_payload: OnPayload,
        on_online_elsewhere: OnOnline,
        on_unclaimed: OnUnclaimed,
    ) -> None:
        self.url = url
        self.node_id = os.urandom(_NODE_ID_SIZE)
        self._on_payload = on_payload
        self._on_online_elsewhere = on_online_elsewhere
        self._on_unclaimed = on_unclaimed
        self._redis: aioredis.Redis | None = None
        self._pubsub: Any = None
        self._tasks: list[asyncio.Task[None]] = []
        self._outbox: collections.deque[tuple[str, bytes, str]] = collections.deque()
        self._wake = asyncio.Event()
        # Redis confirms each SUBSCRIBE once and in order, so waiters are served first come first.
        self._confirm: dict[bytes, collections.deque[asyncio.Future[None]]] = {}

    async def start(self, timeout: float = 5.0) -> None:
        """Connect and follow sign-in announcements; ConfigError if Redis cannot be used."""
        try:
            self._redis = aioredis.Redis.from_url(self.url, socket_connect_timeout=timeout)
            await asyncio.wait_for(self._redis.ping(), timeout)
            self._pubsub = self._redis.pubsub()
            await self._pubsub.subscribe(_ONLINE)
        except (redis.exceptions.RedisError, OSError, ValueError, TimeoutError) as exc:
            await self.close()
            raise ConfigError(
                f"cannot use Redis at {self.url}: {exc or type(exc).__name__}"
            ) from exc
        self._tasks = [
            asyncio.create_task(self._read(), name="tcall-relay-redis"),
            asyncio.create_task(self._publish(), name="tcall-relay-redis-publish"),
        ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._pubsub is not None:
            await self._pubsub.aclose()
            self._pubsub = None
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    def offer(self, mailbox: str, payload: bytes, sender: str = "") -> bool:
        """Queue a payload for whichever node holds `mailbox`; False if the queue is full.

        A payload no node takes comes back through `on_unclaimed`."""
        if len(self._outbox) >= _MAX_OUTBOX:
            return False
        self._outbox.append((mailbox, payload, sender))
        self._wake.set()
        return True

    async def claim(self, mailbox: str) -> int:
        """Subscribe to `mailbox`, wait until Redis confirms, then announce that we hold it.

        Returns the claim's number: Redis hands them out in order, so when two nodes see the same
        mailbox sign in at once, both agree that the higher number is the link that stays."""
        if self._redis is None or self._pubsub is None:
            return 0
        channel = _MAILBOX_PREFIX + mailbox.encode()
        confirmed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._confirm.setdefault(channel, collections.deque()).append(confirmed)
        try:
            await self._pubsub.subscribe(channel)
            await asyncio.wait_for(confirmed, 5.0)
            claim = int(await self._redis.incr(_CLAIMS))
            notice = self.node_id + claim.to_bytes(8, "big") + mailbox.encode()
            await self._redis.publish(_ONLINE, notice)
            return claim
        except Exception as exc:  # without Redis the link still works on this node
            log.error("redis subscribe failed: %s", exc or type(exc).__name__)
            waiters = self._confirm.get(channel)
            if waiters and confirmed in waiters:
                waiters.remove(confirmed)
            return 0

    async def release(self, mailbox: str) -> None:
        """Stop receiving payloads for `mailbox` on this node."""
        if self._pubsub is None:
            return
        try:
            await self._pubsub.unsubscribe(_MAILBOX_PREFIX + mailbox.encode())
        except Exception as exc:
            log.error("redis unsubscribe failed: %s", exc)

    async def _publish(self) -> None:
        assert self._redis is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._outbox:
                count = min(len(self._outbox), _BATCH)
                batch = [self._outbox.popleft() for _ in range(count)]
                try:
                    async with self._redis.pipeline(transaction=False) as pipe:
                        for mailbox, payload, _ in batch:
                            pipe.publish(_MAILBOX_PREFIX + mailbox.encode(), payload)
                        taken = await pipe.execute()
                except Exception as exc:  # a Redis outage must cost these payloads, never a link
                    log.error("redis publish failed: %s", exc or type(exc).__name__)
                    taken = [0] * count
                for (mailbox, payload, sender), receivers in zip(batch, taken, strict=True):
                    if not receivers:
                        self._on_unclaimed(mailbox, payload, sender)

    async def _read(self) -> None:
        while True:
            try:
                message = await self._pubsub.get_message(timeout=None)
            except (redis.exceptions.RedisError, OSError) as exc:
                # redis-py reconnects and re-subscribes on the next read; don't spin meanwhile.
                log.error("redis read failed: %s", exc)
                await asyncio.sleep(1.0)
                continue
            if message is None:
                continue
            try:
                await self._dispatch(message)
            except Exception:
                log.exception("redis message handling failed")

    async def _dispatch(self, message: dict[str, Any]) -> None:
        kind, channel, data = message["type"], message["channel"], message["data"]
        if kind == "subscribe":
            waiters = self._confirm.get(channel)
            if waiters:
                future = waiters.popleft()
                if not waiters:
                    del self._confirm[channel]
                if not future.done():
                    future.set_result(None)
        elif kind == "message" and channel == _ONLINE:
            if data[:_NODE_ID_SIZE] != self.node_id:
                claim = int.from_bytes(data[_NODE_ID_SIZE : _NODE_ID_SIZE + 8], "big")
                mailbox = data[_NODE_ID_SIZE + 8 :].decode("ascii", "replace")
                await self._on_online_elsewhere(mailbox, claim)
        elif kind == "message" and channel.startswith(_MAILBOX_PREFIX):
            self._on_payload(channel[len(_MAILBOX_PREFIX) :].decode("ascii"), data)
