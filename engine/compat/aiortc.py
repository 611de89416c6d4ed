"""tcall's hooks into aiortc's private names, each checked before use.

Video receive path: aiortc's JitterBuffer hands a frame to the decoder only when the first packet of
the *next* frame arrives, which adds a whole frame interval (33 ms at 30 fps) to every frame's
latency, and lets out one frame per arriving packet, so a backlog behind a repaired loss drains
slowly. Its NACK generator asks for a lost packet once, and again only when a new gap appears; it
never gives up on a hole or asks for a keyframe, so a lost retransmission stalled video for 0.5-2.5 s
(issue #16). tcall's VideoReceiveBuffer (engine/media/video_receive.py: the rules, sans-I/O) releases
each frame on its marker packet, every complete one at once, NACKs again on a timer, and skips a hole
after a deadline with a keyframe request. aiortc has no hook for any of it: release_on_marker() puts
a MarkerJitterBuffer in the receiver's name-mangled buffer slot, switches off its NACK generator,
and wraps its packet handler (LossRecovery), which sends the NACKs and PLIs through the receiver's
own `_send_rtcp_nack` and `_send_rtcp_pli` and hands the extra frames to its decoder queue.

Opus with FEC: aiortc's SDP offers Opus with no format parameters, so a browser peer would send no
in-band FEC to us; install() adds `useinbandfec=1` and `minptime=10` to aiortc's Opus codec
(`aiortc.codecs.CODECS`), which every offer and answer then carries. The encoders' hooks (tcall's
Opus encoder in a sender, realtime H.264) are in engine/compat/encoder.py.

Opus receive path: aiortc decodes audio behind a fixed jitter buffer that tcall replaces whole
(engine/media/opus_receiver.py). tap_opus() puts a tap in the receiver's buffer slot (the same
name-mangled attribute as above): Opus packets go to tcall's receiver and never reach aiortc's
decoder thread, any other codec goes on to aiortc's own buffer. The receiver's `receive` says which
payload types are Opus once the call is negotiated.

RED (redundant audio, RFC 2198; engine/media/red.py): install() adds "audio/red" to aiortc's codec
list, last, so plain aiortc peers never send it first; tcall's own offers put it first
(`prefer_red`, the transceiver's codec preferences). The tap routes RED packets to tcall's receiver
too. A plain aiortc peer in a tcall process (tests put some there) that answers tcall's offer with RED
would find no RED encoder or decoder in aiortc: install() gives aiortc's receivers a decoder that
plays the primary block (`_PlainRedDecoder`), and engine/compat/encoder.py its senders an encoder.

Audio level: every audio sender computes the RFC 6465 level of each frame it sends (the RTP
header extension tcall's receiver reads to find pauses) with `aiortc.rtp.compute_audio_level_dbov`, a
Python loop over the samples: 80 us a frame, 50 frames a second per sender, so 2% of a core in a
group call of six. install() puts a numpy version with the same results in its place.

Route: aiortc reports no candidate-pair stats, so nominated_route() reaches aioice's Connection through
the ICE gatherer's private `_connection` (ice_connection(), which tests also use to lose packets on
the way in, through the Connection's public `recv`).
"""

from __future__ import annotations

import asyncio
import inspect
import math
import time
from collections import deque
from collections.abc import Callable

import aiortc.rtcrtpreceiver
import numpy as np
from aioice import Connection
from aiortc import RTCPeerConnection, RTCRtpSender, RTCRtpTransceiver, rtp
from aiortc.codecs import CODECS, get_decoder
from aiortc.codecs.base import Decoder
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpReceiveParameters
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtp import RtpPacket
from av import AudioFrame
from av.frame import Frame as AvFrame

from tcall.engine.compat.aioice import nominated_pair
from tcall.engine.errors import CompatError
from tcall.engine.media import red
from tcall.engine.media.video_receive import Counts, Frame, Output, Packet, VideoReceiveBuffer

SUPPORTED = "~=1.16.0"  # the pin in pyproject.toml
_JITTER_BUFFER = "_RTCRtpReceiver__jitter_buffer"
OPUS = "audio/opus"
OPUS_FMTP = {"minptime": 10, "useinbandfec": 1}


def _incompatible(problem: str) -> CompatError:
    return CompatError("aiortc", problem, SUPPORTED)


# --- video receive path: marker release, NACKs on a timer, keyframe after a deadline ------------


class MarkerJitterBuffer:
    """Stands in a video receiver's jitter buffer: the packets go to tcall's VideoReceiveBuffer
    (engine/media/video_receive.py), and the frames it releases come out in order. aiortc takes one
    frame per packet from add(); the others wait in `ready` for the receiver's hook (LossRecovery),
    which also sends the NACKs and keyframe request the buffer asked for (`nacks`,
    `keyframe_request`). On its own (no receiver), add() hands out one frame at a time."""

    def __init__(self, codec_name: Callable[[int], str] = lambda payload_type: "") -> None:
        self.receive = VideoReceiveBuffer()
        self.codec_name = codec_name  # "VP8", "H264", ... for a payload type; "" if unknown
        self.clock = time.monotonic
        self.ready: deque[Frame] = deque()
        self.nacks: list[int] = []  # to send
        self.keyframe_request = False  # to send
        self.ssrc: int | None = None  # the media source the requests are about
        self.released_on_marker = 0  # frames released (every one on its marker packet)

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        if packet.ssrc != self.ssrc:
            if self.ssrc is not None:  # the sender started another stream: start afresh
                counts = self.receive.counts
                self.receive = VideoReceiveBuffer()
                self.receive.counts = counts
            self.ssrc = packet.ssrc
        data = getattr(packet, "_data", b"")  # the depayloaded payload, set by aiortc
        self.take(
            self.receive.add(
                Packet(
                    seq=packet.sequence_number,
                    timestamp=packet.timestamp,
                    marker=bool(packet.marker),
                    data=data if isinstance(data, bytes) else b"",
                    codec=self.codec_name(packet.payload_type),
                    payload_type=packet.payload_type,
                ),
                self.clock(),
            )
        )
        return False, self.next_frame()

    def poll(self) -> None:
        self.take(self.receive.poll(self.clock()))

    def take(self, out: Output) -> None:
        self.ready.extend(out.frames)
        self.released_on_marker += len(out.frames)
        self.nacks += out.nacks
        self.keyframe_request |= out.keyframe_request

    def next_frame(self) -> JitterFrame | None:
        if not self.ready:
            return None
        frame = self.ready.popleft()
        return JitterFrame(data=frame.data, timestamp=frame.timestamp)


class LossRecovery:
    """A video receiver's side of loss recovery, around aiortc's RTCRtpReceiver: after each packet
    aiortc handled, and on a timer at the buffer's wake_at(), it sends the buffer's NACKs and
    keyframe requests (the receiver's `_send_rtcp_nack`, `_send_rtcp_pli`) and hands the frames
    beyond the one aiortc took to the receiver's decoder thread (its queue, with its timestamp
    mapper, as aiortc does). aiortc's own NACK generator is switched off: it asked once per gap,
    and again only for the packets still listed when a new gap appeared."""

    def __init__(self, receiver: RTCRtpReceiver, buffer: MarkerJitterBuffer) -> None:
        self.receiver = receiver
        self.buffer = buffer
        self.codecs: dict[int, RTCRtpCodecParameters] = getattr(receiver, _RECEIVER["codecs"])
        self.handle_rtp = receiver._handle_rtp_packet
        self.timer: asyncio.TimerHandle | None = None
        self.sending: set[asyncio.Task[None]] = set()

    async def on_rtp(self, packet: RtpPacket, arrival_time_ms: int) -> None:
        await self.handle_rtp(packet, arrival_time_ms=arrival_time_ms)
        self.deliver()
        await self.send_requests()
        self.arm()

    def on_timer(self) -> None:
        self.timer = None
        if getattr(self.receiver, _RECEIVER["decoder_thread"]) is None:
            return  # the receiver stopped
        self.buffer.poll()
        self.deliver()
        task = asyncio.ensure_future(self.send_requests())
        self.sending.add(task)
        task.add_done_callback(self.sending.discard)
        self.arm()

    def arm(self) -> None:
        """The timer, at the buffer's next wake_at() (kept when it is due sooner already)."""
        wake = self.buffer.receive.wake_at()
        if wake is None:
            return
        loop = asyncio.get_running_loop()
        at = loop.time() + max(0.0, wake - self.buffer.clock())
        if self.timer is not None and self.timer.when() <= at:
            return  # it fires first, and arms again
        if self.timer is not None:
            self.timer.cancel()
        self.timer = loop.call_at(at, self.on_timer)

    def deliver(self) -> None:
        queue = getattr(self.receiver, _RECEIVER["decoder_queue"])
        mapper = getattr(self.receiver, _RECEIVER["timestamp_mapper"])
        running = getattr(self.receiver, _RECEIVER["decoder_thread"]) is not None
        while self.buffer.ready:
            frame = self.buffer.ready.popleft()
            codec = self.codecs.get(frame.payload_type)
            if codec is not None and running:
                encoded = JitterFrame(data=frame.data, timestamp=mapper.map(frame.timestamp))
                queue.put((codec, encoded))

    async def send_requests(self) -> None:
        nacks, self.buffer.nacks = self.buffer.nacks, []
        keyframe, self.buffer.keyframe_request = self.buffer.keyframe_request, False
        ssrc = self.buffer.ssrc
        if ssrc is None:
            return
        if nacks:
            await self.receiver._send_rtcp_nack(ssrc, nacks)
        if keyframe:
            await self.receiver._send_rtcp_pli(ssrc)


# The receiver's private names LossRecovery uses (RTCRtpReceiver's, name-mangled).
_RECEIVER = {
    name: f"_RTCRtpReceiver__{name}"
    for name in (
        "codecs",
        "decoder_queue",
        "decoder_thread",
        "jitter_buffer",
        "nack_generator",
        "timestamp_mapper",
    )
}
_RECEIVER_METHODS = ("_handle_rtp_packet", "_send_rtcp_nack", "_send_rtcp_pli")


def _check_receiver(receiver: object) -> None:
    """The receiver has every name release_on_marker() uses."""
    missing = [name for name in _RECEIVER.values() if name not in vars(receiver)]
    missing += [name for name in _RECEIVER_METHODS if not callable(getattr(receiver, name, None))]
    if missing:
        raise _incompatible(f"RTCRtpReceiver has no {', '.join(missing)}")
    if not isinstance(getattr(receiver, _RECEIVER["codecs"]), dict) or not callable(
        getattr(getattr(receiver, _RECEIVER["timestamp_mapper"]), "map", None)
    ):
        raise _incompatible("RTCRtpReceiver's codecs or timestamp mapper changed shape")


def _check_receive_path() -> None:
    """release_on_marker()'s names, on a receiver aiortc builds (with a stand-in transport: no
    connection needed), and aiortc still hands the jitter buffer depayloaded packets as
    `packet._data` (read in its source, when there is source to read)."""

    class Transport:
        state = "new"

    _check_receiver(RTCRtpReceiver("video", Transport()))  # type: ignore[arg-type]
    try:
        source = inspect.getsource(RTCRtpReceiver._handle_rtp_packet)
    except (OSError, TypeError):  # installed without its .py files
        return
    if "._data" not in source:
        raise _incompatible("RTCRtpReceiver no longer depayloads into packet._data")


def release_on_marker(receiver: RTCRtpReceiver) -> MarkerJitterBuffer:
    """Give a video receiver tcall's receive path (before media flows): a MarkerJitterBuffer in
    its jitter buffer's place, and LossRecovery around its packet handler."""
    _check_receiver(receiver)
    current = getattr(receiver, _RECEIVER["jitter_buffer"])
    if isinstance(current, MarkerJitterBuffer):
        return current  # installed already
    # The receiver's codecs are filled in when it starts, after this: look them up as packets come.
    codecs: dict[int, RTCRtpCodecParameters] = getattr(receiver, _RECEIVER["codecs"])
    buffer = MarkerJitterBuffer(lambda payload_type: _codec_name(codecs, payload_type))
    recovery = LossRecovery(receiver, buffer)
    setattr(receiver, _RECEIVER["jitter_buffer"], buffer)
    setattr(receiver, _RECEIVER["nack_generator"], None)
    receiver._handle_rtp_packet = recovery.on_rtp  # type: ignore[method-assign]
    return buffer


def video_receive_counts(pc: RTCPeerConnection) -> Counts | None:
    """What the video receive path did so far (frames, NACKs, repairs, skips, keyframe requests),
    for stats and tests; None without a video receiver that has it."""
    for transceiver in pc.getTransceivers():
        buffer = getattr(transceiver.receiver, _RECEIVER["jitter_buffer"], None)
        if transceiver.kind == "video" and isinstance(buffer, MarkerJitterBuffer):
            return buffer.receive.counts
    return None


def _codec_name(codecs: dict[int, RTCRtpCodecParameters], payload_type: int) -> str:
    codec = codecs.get(payload_type)
    return "" if codec is None else str(codec.name)


# --- audio: Opus with FEC, and tcall's receive path ----------------------------------------------


def _advertise_opus_fec() -> None:
    opus = [c for c in CODECS.get("audio", []) if c.mimeType.lower() == OPUS]
    if not opus:
        raise _incompatible("aiortc.codecs.CODECS has no audio/opus")
    for codec in opus:
        codec.parameters.update(OPUS_FMTP)


def _advertise_red() -> None:
    """Make RED (RFC 2198, its blocks in Opus: `fmtp:63 96/96`) a codec aiortc knows, last in its
    list: plain aiortc peers in the same process never send it first (aiortc has no RED encoder
    or decoder); tcall's own transceivers put it first (`prefer_red`)."""
    audio = CODECS.get("audio", [])
    if any(c.mimeType.lower() == red.MIME for c in audio):
        return
    opus = next(c for c in audio if c.mimeType.lower() == OPUS)
    redundant = RTCRtpCodecParameters(
        mimeType="audio/red",
        clockRate=opus.clockRate,
        channels=opus.channels,
        payloadType=red.PAYLOAD_TYPE,
        parameters={f"{opus.payloadType}/{opus.payloadType}": None},
    )
    audio.append(redundant)


class _PlainRedDecoder(Decoder):
    """RED for an aiortc peer that is not tcall's (aiortc has no RED decoder): the primary Opus
    block of each packet, decoded by aiortc's Opus decoder. tcall's own receivers take RED
    packets before aiortc's buffer (`tap_opus`) and use the copies too."""

    def __init__(self, codec: RTCRtpCodecParameters) -> None:
        self.opus = get_decoder(RTCRtpCodecParameters("audio/opus", codec.clockRate, 2))
        named = red.fmtp_payload_type(codec.parameters)
        self.types = frozenset(range(128)) if named is None else frozenset({named})

    def decode(self, encoded_frame: JitterFrame) -> list[AvFrame]:
        unpacked = red.unpack(0, 0, encoded_frame.data, self.types, lambda block: None)
        if unpacked is None:
            return []
        return self.opus.decode(JitterFrame(unpacked.primary, encoded_frame.timestamp))


def _decoder_with_red(codec: RTCRtpCodecParameters) -> Decoder:
    if codec.mimeType.lower() == red.MIME:
        return _PlainRedDecoder(codec)
    return get_decoder(codec)


def _install_red_decoder() -> None:
    current = getattr(aiortc.rtcrtpreceiver, "get_decoder", None)
    if current is _decoder_with_red:
        return
    if not callable(current):
        raise _incompatible("aiortc.rtcrtpreceiver has no get_decoder")
    aiortc.rtcrtpreceiver.get_decoder = _decoder_with_red


def prefer_red(transceiver: RTCRtpTransceiver) -> None:
    """Offer RED first on a transceiver whose audio tcall sends and receives (SpeechPath): a peer
    that knows RED then answers with it first, and both send it. An answer follows the offer's
    order, so a browser that offers Opus first gets plain Opus."""
    codecs = RTCRtpSender.getCapabilities("audio").codecs
    first = [c for c in codecs if c.mimeType.lower() == red.MIME]
    transceiver.setCodecPreferences(first + [c for c in codecs if c not in first])


OnOpus = Callable[[RtpPacket], None]
OnRed = Callable[[RtpPacket, frozenset[int]], None]


class _OpusTap:
    """Stands in a receiver's jitter buffer: Opus and RED packets go to tcall, others to aiortc's
    buffer."""

    def __init__(self, fallback: JitterBuffer, on_opus: OnOpus, on_red: OnRed) -> None:
        self.fallback = fallback
        self.on_opus = on_opus
        self.on_red = on_red
        self.opus_types: frozenset[int] = frozenset()
        self.red_types: frozenset[int] = frozenset()

    @property
    def capacity(self) -> int:
        return self.fallback.capacity

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        if packet.payload_type in self.opus_types:
            self.on_opus(packet)
            return False, None
        if packet.payload_type in self.red_types:
            self.on_red(packet, self.opus_types)
            return False, None
        return self.fallback.add(packet)


def tap_opus(receiver: RTCRtpReceiver, on_opus: OnOpus, on_red: OnRed) -> None:
    """Route an audio receiver's Opus packets to `on_opus` and its RED packets to `on_red` (with
    the payload types that are Opus), on the event loop as they arrive, instead of aiortc's buffer
    and decoder (which has no RED decoder). Call before the connection starts media."""
    current = getattr(receiver, _JITTER_BUFFER, None)
    if not isinstance(current, JitterBuffer | _OpusTap):
        raise _incompatible("RTCRtpReceiver has no jitter buffer attribute")
    fallback = current.fallback if isinstance(current, _OpusTap) else current
    tap = _OpusTap(fallback, on_opus, on_red)
    setattr(receiver, _JITTER_BUFFER, tap)
    original = receiver.receive

    async def receive(parameters: RTCRtpReceiveParameters) -> None:
        tap.opus_types = _payload_types(parameters.codecs, OPUS)
        tap.red_types = _payload_types(parameters.codecs, red.MIME)
        await original(parameters)

    receiver.receive = receive  # type: ignore[method-assign]


def _payload_types(codecs: list[RTCRtpCodecParameters], mime: str) -> frozenset[int]:
    return frozenset(
        c.payloadType for c in codecs if c.mimeType.lower() == mime and c.payloadType is not None
    )


def opus_payload_type(codecs: list[RTCRtpCodecParameters]) -> int | None:
    """The negotiated Opus payload type among a sender's codecs (what RED blocks carry)."""
    return next(iter(sorted(_payload_types(codecs, OPUS))), None)


def audio_level(packet: RtpPacket) -> int | None:
    """The packet's RFC 6464 audio level (0 loudest, 127 silence), when the sender set one."""
    level = packet.extensions.audio_level
    return int(level[1]) if level is not None else None


MAX_SAMPLE = 32767
MIN_AUDIO_LEVEL = -127


_last_level: tuple[AudioFrame, int] | None = None  # (frame, its level): replaced whole


def audio_level_dbov(frame: AudioFrame) -> int:
    """aiortc's compute_audio_level_dbov (RFC 6465 Appendix A) in numpy, with its results: the RMS
    of the frame's first plane of int16 samples, over `frame.samples`, in dBov from -127 to 0.
    A group call's senders all send the same frame object: its level is computed once."""
    global _last_level
    last = _last_level
    if last is not None and last[0] is frame:
        return last[1]
    level = _level_dbov(frame)
    _last_level = (frame, level)
    return level


def _level_dbov(frame: AudioFrame) -> int:
    samples = np.frombuffer(memoryview(frame.planes[0]), dtype=np.int16)
    power = float(np.dot(samples, samples.astype(np.float64))) if len(samples) else 0.0
    rms = math.sqrt(power / (frame.samples * MAX_SAMPLE * MAX_SAMPLE)) if frame.samples else 0.0
    if rms <= 0:
        return MIN_AUDIO_LEVEL
    return round(min(0.0, max(float(MIN_AUDIO_LEVEL), 20 * math.log10(rms))))


AIORTC_AUDIO_LEVEL = getattr(rtp, "compute_audio_level_dbov", None)  # aiortc's own, for tests


def _fast_audio_level() -> None:
    if not callable(getattr(rtp, "compute_audio_level_dbov", None)):
        raise _incompatible("aiortc.rtp has no compute_audio_level_dbov")
    rtp.compute_audio_level_dbov = audio_level_dbov


# --- route ---------------------------------------------------------------------------------------


def ice_connection(pc: RTCPeerConnection) -> Connection | None:
    """The aioice Connection under a peer connection's (bundled) transport, once there is one."""
    for transceiver in pc.getTransceivers():
        try:
            gatherer = transceiver.sender.transport.transport.iceGatherer
        except AttributeError:  # no transport yet
            continue
        connection = getattr(gatherer, "_connection", None)
        if not isinstance(connection, Connection):
            raise _incompatible("RTCIceGatherer has no aioice Connection")
        return connection
    return None


def nominated_route(pc: RTCPeerConnection) -> str | None:
    """Candidate types of the pair ICE chose, e.g. "host/host" or "relay/relay"."""
    connection = ice_connection(pc)
    pair = None if connection is None else nominated_pair(connection)
    if pair is None:
        return None
    return f"{pair.local_candidate.type}/{pair.remote_candidate.type}"


# --- arrivals ------------------------------------------------------------------------------------


def packets_received(pc: RTCPeerConnection) -> int:
    """Packets of any kind (RTP, RTCP, DTLS) the peer connection's transports have received: what
    tells a live path from a dead one even when every track is off. aiortc counts them for its
    transport stats (`RTCDtlsTransport._get_stats`, no public getter)."""
    total = 0
    seen: set[int] = set()
    for transceiver in pc.getTransceivers():
        transport = transceiver.receiver.transport
        if transport is None or id(transport) in seen:
            continue
        seen.add(id(transport))
        get_stats = getattr(transport, "_get_stats", None)
        if get_stats is None:
            raise _incompatible("RTCDtlsTransport has no _get_stats")
        for item in get_stats().values():
            if getattr(item, "type", None) == "transport":
                total += int(getattr(item, "packetsReceived", 0) or 0)
    return total


def install() -> None:
    """Check the receiver's names the video receive path uses, offer Opus FEC, and compute audio
    levels in numpy; safe to call again."""
    _check_receive_path()
    _advertise_opus_fec()
    _advertise_red()
    _install_red_decoder()
    _fast_audio_level()
