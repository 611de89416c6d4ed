"""Random frames and random bytes against a live relay: only clean refusals, never a crash or a
hang, and the relay keeps serving everyone else afterwards."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import nacl.signing
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tcall.engine.relay import protocol
from tcall.engine.relay.client import RelayClient
from tcall.engine.server.server import RelayConfig
from tests.support.hostile import HostileRelay
from tests.support.relay_links import Wire, raw_link

KEY = nacl.signing.SigningKey(bytes(32))
OTHER = protocol.mailbox_id(bytes(nacl.signing.SigningKey(bytes([7] * 32)).verify_key))


class _Failures(logging.Handler):
    """Catches what aiohttp logs when a handler raises: a crash we would not otherwise see."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module")
def failures() -> Iterator[_Failures]:
    handler = _Failures()
    logging.getLogger().addHandler(handler)
    yield handler
    logging.getLogger().removeHandler(handler)


@pytest.fixture(scope="module")
def live(failures: _Failures) -> Iterator[HostileRelay]:
    with HostileRelay(config=RelayConfig(hold_seconds=1.0, auth_timeout=2.0)) as relay:
        yield relay


def _frames() -> st.SearchStrategy[bytes | str]:
    kinds = st.sampled_from([int(k) for k in protocol.Kind] + [0, 255])
    shaped = st.builds(lambda k, body: bytes([k]) + body, kinds, st.binary(max_size=120))
    sends = st.builds(
        lambda body: protocol.encode_send(OTHER, body), st.binary(min_size=1, max_size=64)
    )
    return st.one_of(st.binary(max_size=300), shaped, sends, st.text(max_size=40))


async def _exercise(url: str, signed_in: bool, frames: list[bytes | str]) -> None:
    async with raw_link(url) as link:
        mailbox = await link.sign_in(KEY) if signed_in else None
        if not signed_in:
            await link.frame()  # the challenge
        for frame in frames:
            if link.ws.closed:
                break
            if isinstance(frame, str):
                await link.ws.send_str(frame)
            else:
                await link.ws.send_bytes(frame)
        # A probe the relay must answer within a bound: echoed back if the link survived the
        # frames, or an ERROR and a close if it did not. Silence would be a hang.
        probe = b"probe-" + bytes(8)
        if mailbox is not None and not link.ws.closed:
            await link.ws.send_bytes(protocol.encode_send(mailbox, probe))
        elif not link.ws.closed:
            await link.ws.send_bytes(b"\x00")
        while True:
            data = await link.frame(timeout=3.0)
            if data is None:
                assert link.ws.closed
                return
            if data[0] == protocol.Kind.ERROR:
                assert protocol.ErrorCode(data[1])
            elif data == protocol.encode_deliver(probe):
                return


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(signed_in=st.booleans(), frames=st.lists(_frames(), max_size=6))
def test_fuzz_live_relay(
    live: HostileRelay, failures: _Failures, signed_in: bool, frames: list[bytes | str]
) -> None:
    asyncio.run(asyncio.wait_for(_exercise(live.url, signed_in, frames), 10))
    assert [r.getMessage() for r in failures.records] == []


async def _garbage(url: str, signed_in: bool, chunks: list[bytes]) -> None:
    wire = await Wire.open(url)
    try:
        challenge = await wire.upgrade()
        if signed_in:
            wire.writer.write(wire.auth(KEY, challenge))
            assert (await wire.frame())[1][:1] == bytes((protocol.Kind.READY,))
        for chunk in chunks:
            wire.writer.write(chunk)
            await wire.writer.drain()
        # Whatever the bytes left the parser waiting for, our end of the stream must make the
        # relay hang up within a bound, after frames it may send (ERROR, close, pong): no hang.
        wire.writer.write_eof()
        while (await wire.frame())[0] != -1:
            pass
    finally:
        wire.close()


_frame_like = st.builds(
    lambda first, size, mask, body: bytes((first, 0x80 | size)) + mask + body,
    st.integers(0, 255),
    st.integers(0, 127),
    st.binary(min_size=4, max_size=4),
    st.binary(max_size=140),
)


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    signed_in=st.booleans(),
    chunks=st.lists(st.one_of(st.binary(max_size=200), _frame_like), max_size=5),
)
def test_fuzz_raw_bytes_after_the_handshake(
    live: HostileRelay, failures: _Failures, signed_in: bool, chunks: list[bytes]
) -> None:
    asyncio.run(asyncio.wait_for(_garbage(live.url, signed_in, chunks), 10))
    assert [r.getMessage() for r in failures.records] == []


def test_relay_still_serves_after_the_fuzzing(live: HostileRelay, failures: _Failures) -> None:
    async def roundtrip() -> bytes:
        async with raw_link(live.url) as link:
            await link.frame()
            await link.ws.send_bytes(b"garbage")
            assert await link.refusal() == protocol.ErrorCode.UNEXPECTED
        a = await RelayClient.connect(live.url, nacl.signing.SigningKey.generate())
        b = await RelayClient.connect(live.url, nacl.signing.SigningKey.generate())
        await a.send(b.mailbox, b"alive")
        try:
            return await asyncio.wait_for(b.receive(), 5)
        finally:
            await a.close()
            await b.close()

    assert asyncio.run(roundtrip()) == b"alive"
    assert live.server.stats["refused"] > 0
    assert failures.records == []
