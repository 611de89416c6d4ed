"""Issue #12's attacks on `tcall serve`, each against a real relay process over real loopback
sockets, bounded in count and time, each followed by a real exchange through the same relay.
Memory is the relay process's VmRSS from /proc, before and after."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable

import nacl.signing

from tcall.engine.errors import RelayUnreachable
from tcall.engine.relay import protocol
from tcall.engine.relay.client import RelayClient
from tcall.engine.relay.protocol import ErrorCode
from tcall.engine.server.websocket import (
    FrameParser,
    Opcode,
    frame_header,
    parse_request,
    upgrade_response,
)
from tests.support.relay_links import Wire
from tests.support.relays import ServeProcess

MiB = 1 << 20


def rss(relay: ServeProcess) -> int:
    with open(f"/proc/{relay.proc.pid}/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


def key() -> nacl.signing.SigningKey:
    return nacl.signing.SigningKey.generate()


async def signed_in(url: str, signing_key: nacl.signing.SigningKey | None = None) -> Wire:
    wire = await Wire.open(url)
    challenge = await wire.upgrade()
    wire.writer.write(wire.auth(signing_key or key(), challenge))
    opcode, ready = await wire.frame()
    assert opcode == Opcode.BINARY and ready[0] == protocol.Kind.READY, ready
    return wire


async def refusal(wire: Wire, timeout: float = 10.0) -> ErrorCode | None:
    """Read (and so drain) until the relay closes; the code of its ERROR, if any."""
    code = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        opcode, data = await wire.frame()
        if opcode == -1:
            return code
        if opcode == Opcode.BINARY and data[0] == protocol.Kind.ERROR:
            code = ErrorCode(data[1])
    raise AssertionError("the relay kept the link open")


async def closed(wire: Wire, timeout: float = 10.0) -> None:
    """Wait until the relay drops a link whose reads we never made."""
    async with asyncio.timeout(timeout):
        while await wire.reader.read(1 << 16):
            pass


async def a_real_exchange(url: str) -> None:
    """The check after each attack: a payload between two real clients, and one held for an
    offline mailbox, both arrive."""
    a, b = await RelayClient.connect(url, key()), await RelayClient.connect(url, key())
    late = key()
    try:
        await a.send(b.mailbox, b"hello")
        assert await asyncio.wait_for(b.receive(), 5) == b"hello"
        await a.send(protocol.mailbox_id(bytes(late.verify_key)), b"held for you")
        c = await RelayClient.connect(url, late)
        assert await asyncio.wait_for(c.receive(), 5) == b"held for you"
        await c.close()
    finally:
        await a.close()
        await b.close()


async def test_hold_flood_stays_within_its_memory_cap(
    serve: Callable[..., ServeProcess],
) -> None:
    """Item 1: signed-in links send 1-byte payloads to random offline mailboxes. The hold is
    capped at 8 MiB of real cost (entries included), so RSS grows by about that, not ~1 KB an
    entry; expiry pops only what is due, so the loop keeps answering while 25k entries expire."""
    relay = serve("--hold-memory", "8", "--hold-seconds", "2", "--rate", "1e5", "--burst", "1e5")
    links = [await signed_in(relay.url) for _ in range(12)]
    before = rss(relay)
    for wire in links:  # 3000 each, 36k in all: every link under its 1 MiB share
        wire.writer.write(
            b"".join(
                wire.frame_bytes(Opcode.BINARY, protocol.encode_send(os.urandom(16).hex(), b"x"))
                for _ in range(3000)
            )
        )
    await asyncio.gather(*(wire.writer.drain() for wire in links))
    probe = await signed_in(relay.url)
    lags = []
    for _ in range(40):  # 4 s: the flood is handled, held, then expires
        sent = time.monotonic()
        probe.writer.write(probe.frame_bytes(Opcode.PING, b"p"))
        assert (await probe.frame())[0] == Opcode.PONG
        lags.append(time.monotonic() - sent)
        await asyncio.sleep(0.1)
    grown = rss(relay) - before
    assert grown < 8 * MiB + 8 * MiB, f"relay grew {grown / MiB:.1f} MiB"
    assert max(lags[15:]) < 0.25, f"loop stalled {max(lags[15:]) * 1000:.0f} ms"
    for wire in [*links, probe]:
        wire.close()
    await a_real_exchange(relay.url)


async def test_empty_continuation_frames_end_the_link(serve: Callable[..., ServeProcess]) -> None:
    """Item 2: a fragmented message that never ends, in empty frames. Each frame costs a token
    and a message may take 16 frames, so the link is refused, and nothing grows."""
    relay = serve()
    links = [await signed_in(relay.url) for _ in range(20)]
    before = rss(relay)
    first = protocol.encode_send(os.urandom(16).hex(), b"")
    for wire in links:
        empty = wire.frame_bytes(Opcode.CONTINUATION, b"", fin=False)
        wire.writer.write(wire.frame_bytes(Opcode.BINARY, first, fin=False) + empty * 50_000)
    codes = await asyncio.gather(*(refusal(wire) for wire in links))
    assert set(codes) == {ErrorCode.TOO_LARGE}
    assert rss(relay) - before < 4 * MiB
    for wire in links:
        wire.close()
    await a_real_exchange(relay.url)


async def test_small_fragments_cost_at_most_a_message(serve: Callable[..., ServeProcess]) -> None:
    """Item 3: a 64 KiB message in 2-byte fragments is refused at its 17th frame, signed in or
    not; 50 links each holding the largest message the relay allows, unfinished, in 16 frames,
    cost it at most 2 messages' worth each (the fragments joined, and the frame being read)."""
    relay = serve()
    before = rss(relay)
    links = [await signed_in(relay.url) for _ in range(25)]
    for _ in range(25):
        wire = await Wire.open(relay.url)
        await wire.upgrade()
        links.append(wire)
    for wire in links:
        pieces = [wire.frame_bytes(Opcode.BINARY, b"\x04" + os.urandom(1), fin=False)]
        pieces += [wire.frame_bytes(Opcode.CONTINUATION, b"ab", fin=False)] * 32_767
        wire.writer.write(b"".join(pieces))
    assert set(await asyncio.gather(*(refusal(wire) for wire in links))) == {ErrorCode.TOO_LARGE}
    for wire in links:
        wire.close()

    links = [await signed_in(relay.url) for _ in range(50)]
    base = rss(relay)
    piece = protocol.MAX_FRAME // 16
    for wire in links:
        frames = [wire.frame_bytes(Opcode.BINARY, b"\x04" + os.urandom(piece - 1), fin=False)]
        frames += [wire.frame_bytes(Opcode.CONTINUATION, os.urandom(piece), fin=False)] * 14
        last = wire.frame_bytes(Opcode.CONTINUATION, os.urandom(piece), fin=True)
        wire.writer.write(b"".join(frames) + last[:-10])  # the last frame, all but its end
    await asyncio.gather(*(wire.writer.drain() for wire in links))
    await asyncio.sleep(1.0)
    per_link = (rss(relay) - base) / 50
    assert per_link < 2 * protocol.MAX_FRAME + 32 * 1024, f"{per_link / 1024:.0f} KiB a link"
    assert rss(relay) - before < 16 * MiB
    for wire in links:
        wire.close()
    await a_real_exchange(relay.url)


async def test_ping_flood_before_sign_in_is_bounded(serve: Callable[..., ServeProcess]) -> None:
    """Item 4: links that never sign in flood pings and never read the PONGs. With the default
    rate limit they are refused at the burst; with the rate limit out of the way, at the 1 MiB
    backlog: either way the relay drops them, and grows by at most the backlog a link."""
    for args in ((), ("--rate", "1e6", "--burst", "1e6")):
        relay = serve(*args)
        before = rss(relay)
        links = []
        for _ in range(10):
            wire = await Wire.open(relay.url)
            await wire.upgrade()
            links.append(wire)

        async def flood(wire: Wire) -> None:
            ping = wire.frame_bytes(Opcode.PING, b"p" * 125) * 500
            try:
                async with asyncio.timeout(10):
                    while True:  # until the relay drops us, without ever reading
                        wire.writer.write(ping)
                        await wire.writer.drain()
            except (ConnectionError, TimeoutError):
                pass

        await asyncio.wait_for(asyncio.gather(*(flood(wire) for wire in links)), 15)
        peak = rss(relay) - before
        assert peak < 10 * (MiB + 256 * 1024) + 4 * MiB, f"relay grew {peak / MiB:.1f} MiB"
        for wire in links:
            wire.close()
        await a_real_exchange(relay.url)


async def test_a_mailbox_cannot_be_filled_by_strangers(serve: Callable[..., ServeProcess]) -> None:
    """Item 11: four signed-in strangers try to fill an offline mailbox's 32 slots (40 each);
    the owner's contact still gets its message in, and the owner receives it."""
    relay = serve()
    owner = key()
    box = protocol.mailbox_id(bytes(owner.verify_key))
    spammers = [await signed_in(relay.url) for _ in range(4)]
    for wire in spammers:
        junk = wire.frame_bytes(Opcode.BINARY, protocol.encode_send(box, b"junk"))
        wire.writer.write(junk * 40)
        await wire.writer.drain()
    await asyncio.sleep(0.5)
    friend = await RelayClient.connect(relay.url, key())
    await friend.send(box, b"the real offer")
    await asyncio.sleep(0.2)
    received = await RelayClient.connect(relay.url, owner)
    got = []
    try:
        while True:
            got.append(await asyncio.wait_for(received.receive(), 0.5))
    except TimeoutError:
        pass
    assert b"the real offer" in got and len(got) <= 32
    for wire in spammers:
        wire.close()
    await friend.close()
    await received.close()


async def forwarded_sign_in(
    home_url: str, victim: nacl.signing.SigningKey, naming: str
) -> ErrorCode | str | None:
    """Run a relay ("evil") that passes home's challenge on to the victim's client and its AUTH
    back to home, with a Host header naming `naming` ("evil" or "home"); what home answered."""
    done: asyncio.Future[ErrorCode | str | None] = asyncio.get_running_loop().create_future()

    async def evil(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        writer.write(upgrade_response(parse_request(head[:-4])))
        upstream = await Wire.open(home_url)
        if naming == "evil":
            upstream.host = evil_url.removeprefix("ws://")
        try:
            challenge = await upstream.upgrade()
        except AssertionError:
            done.set_result("handshake refused")
            return
        writer.write(frame_header(Opcode.BINARY, len(challenge)) + challenge)
        parser = FrameParser(protocol.MAX_FRAME)
        messages: list[tuple[int, bytes]] = []
        while not messages:
            messages = parser.feed(await reader.read(4096))
        upstream.writer.write(upstream.frame_bytes(Opcode.BINARY, messages[0][1]))
        done.set_result(await refusal(upstream))

    listener = await asyncio.start_server(evil, "127.0.0.1", 0)
    evil_url = f"ws://127.0.0.1:{listener.sockets[0].getsockname()[1]}"
    try:
        # The victim's tcall connects to its contact's relay, as it does at start.
        with contextlib.suppress(RelayUnreachable):
            link = await RelayClient.connect(evil_url, victim, timeout=3)
            await link.close()
        return await asyncio.wait_for(done, 5)
    finally:
        listener.close()


async def test_a_relay_cannot_pass_on_another_relays_challenge(
    serve: Callable[..., ServeProcess],
) -> None:
    """Item 9: a contact's relay passes our home relay's challenge on to us and our AUTH back to
    home, naming itself or home in the Host header. Home refuses it, our own link there stays,
    and a payload for us still reaches us."""
    home = serve()
    victim = key()
    ours = await RelayClient.connect(home.url, victim)
    for naming in ("evil", "home"):
        result = await forwarded_sign_in(home.url, victim, naming)
        assert result in (ErrorCode.AUTH_FAILED, "handshake refused"), (naming, result)
    sender = await RelayClient.connect(home.url, key())
    await sender.send(ours.mailbox, b"still ours")
    assert await asyncio.wait_for(ours.receive(), 5) == b"still ours"
    await sender.close()
    await ours.close()
