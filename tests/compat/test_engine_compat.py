"""Each engine hook, installed against the real aiortc and aioice; a missing target is a CompatError."""

from __future__ import annotations

import asyncio
import fractions
import tomllib
from importlib.metadata import version
from pathlib import Path

import aioice
import aioice.ice
import aiortc.rtcrtpreceiver
import aiortc.rtcrtpsender
import aiortc.rtp
import av
import numpy as np
import pytest
from aiortc import AudioStreamTrack, RTCConfiguration, RTCPeerConnection
from aiortc.codecs.base import Encoder
from aiortc.codecs.h264 import H264Encoder
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from tcall.engine import compat
from tcall.engine.compat import aioice as aioice_hooks
from tcall.engine.compat import aiortc as aiortc_hooks
from tcall.engine.compat import encoder as encoder_hooks
from tcall.engine.errors import CompatError, TcallError


def test_install_is_idempotent() -> None:
    compat.install()
    compat.install()
    assert aioice.ice.get_host_addresses is aioice_hooks.host_addresses
    assert aiortc.rtcrtpsender.get_encoder is encoder_hooks.realtime_encoder


def test_host_addresses_are_pinned_or_include_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    compat.install()
    monkeypatch.setenv("TCALL_ICE_ADDRESSES", "127.0.0.1, ::1")
    assert aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=False) == ["127.0.0.1"]
    assert aioice.ice.get_host_addresses(use_ipv4=False, use_ipv6=True) == ["::1"]
    monkeypatch.delenv("TCALL_ICE_ADDRESSES")
    # Loopback only when there is no other IPv4 address (it slows every call across NATs).
    found: list[str] = []
    monkeypatch.setattr(aioice_hooks, "_aioice_host_addresses", lambda **_: list(found))
    assert aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=False) == ["127.0.0.1"]
    found += ["198.51.100.2"]
    assert aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=False) == ["198.51.100.2"]
    found[:] = ["2001:db8::2"]
    assert aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=True) == [
        "2001:db8::2",
        "127.0.0.1",
    ]


async def test_no_stun_query_from_a_loopback_candidate(monkeypatch: pytest.MonkeyPatch) -> None:
    """A loopback host candidate asks no STUN server (its answer could never come back from
    outside, and aioice would wait 5 s for it): a silent STUN server hears nothing."""
    compat.install()
    monkeypatch.setenv("TCALL_ICE_ADDRESSES", "127.0.0.1")
    heard: list[object] = []

    class Silent(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: object) -> None:
            heard.append(addr)

    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(Silent, local_addr=("127.0.0.1", 0))
    connection = aioice.Connection(
        ice_controlling=True, stun_server=("127.0.0.1", transport.get_extra_info("sockname")[1])
    )
    try:
        await connection.gather_candidates()
        assert [c.type for c in connection.local_candidates] == ["host"]
        assert heard == []
    finally:
        transport.close()
        await connection.close()


async def test_a_check_lost_on_the_way_is_sent_again_when_the_peers_check_arrives(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As across two NATs: the caller's first check is lost (the other router had not opened yet).
    When the callee's own check arrives, the caller checks again at once (RFC 8445 7.3.1.4) rather
    than after its retransmission timer, made 30 s long here so that only this can connect."""
    compat.install()
    monkeypatch.setenv("TCALL_ICE_ADDRESSES", "127.0.0.1")
    monkeypatch.setattr(aioice.stun, "RETRY_RTO", 30.0)
    caller = aioice.Connection(ice_controlling=True)
    callee = aioice.Connection(ice_controlling=False)
    try:
        for one in (caller, callee):
            await one.gather_candidates()
        (callee_protocol,) = callee._protocols
        receive, lost = callee_protocol.datagram_received, []

        def lose_the_first_check(data: bytes, addr: tuple[str, int]) -> None:
            if not lost:
                lost.append(addr)
                return
            receive(data, addr)

        callee_protocol.datagram_received = lose_the_first_check  # type: ignore[method-assign]
        for one, other in ((caller, callee), (callee, caller)):
            one.remote_username, one.remote_password = other.local_username, other.local_password
            for candidate in other.local_candidates:
                await one.add_remote_candidate(candidate)
            await one.add_remote_candidate(None)
        await asyncio.wait_for(asyncio.gather(caller.connect(), callee.connect()), 10)
        assert lost  # the caller's first check really was lost
    finally:
        await caller.close()
        await callee.close()


def _x264_settings(encoder: Encoder) -> bytes:
    """The settings x264 writes into its first frame (an SEI), e.g. b"... subme=0 ..."."""
    frame = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), dtype=np.uint8), format="rgb24")
    frame.pts, frame.time_base = 0, fractions.Fraction(1, 90000)
    return b"".join(encoder.encode(frame)[0])


def test_h264_encoder_gets_the_realtime_preset() -> None:
    compat.install()
    codec = RTCRtpCodecParameters(mimeType="video/H264", clockRate=90000, payloadType=102)
    encoder = aiortc.rtcrtpsender.get_encoder(codec)
    assert isinstance(encoder, encoder_hooks.AdaptiveVideoEncoder)
    assert isinstance(encoder.inner, H264Encoder)
    assert b"subme=0 " in _x264_settings(encoder)  # ultrafast; x264's default preset uses 7
    assert b"subme=7 " in _x264_settings(H264Encoder())


async def test_video_receiver_gets_the_receive_path() -> None:
    compat.install()
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        receiver = pc.addTransceiver("video").receiver
        buffer = aiortc_hooks.release_on_marker(receiver)
        assert isinstance(buffer, aiortc_hooks.MarkerJitterBuffer)
        assert receiver._RTCRtpReceiver__jitter_buffer is buffer
        assert receiver._RTCRtpReceiver__nack_generator is None  # tcall's buffer asks instead
        assert getattr(receiver._handle_rtp_packet, "__self__", None).__class__ is (
            aiortc_hooks.LossRecovery
        )
        assert aiortc_hooks.release_on_marker(receiver) is buffer  # once is enough
    finally:
        await pc.close()


async def test_nominated_route_of_a_loopback_pair(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TCALL_ICE_ADDRESSES", "127.0.0.1")
    compat.install()
    a = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    b = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    connected = asyncio.Event()
    a.on("connectionstatechange", lambda: a.connectionState == "connected" and connected.set())
    try:
        a.addTransceiver("audio")
        assert aiortc_hooks.nominated_route(a) is None
        await a.setLocalDescription(await a.createOffer())
        await b.setRemoteDescription(a.localDescription)
        b.addTrack(AudioStreamTrack())
        await b.setLocalDescription(await b.createAnswer())
        await a.setRemoteDescription(b.localDescription)
        await asyncio.wait_for(connected.wait(), 10)
        assert aiortc_hooks.nominated_route(a) == "host/host"
        # What arrived so far (the DTLS handshake), growing as b sends (50 packets a second).
        before = aiortc_hooks.packets_received(a)
        assert before > 0
        deadline = asyncio.get_running_loop().time() + 10
        while aiortc_hooks.packets_received(a) < before + 10:
            assert asyncio.get_running_loop().time() < deadline, "nothing arrived"
            await asyncio.sleep(0.1)
    finally:
        await a.close()
        await b.close()


def test_missing_targets_raise_compat_errors_naming_the_version(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delattr(aioice.ice, "get_host_addresses")
    with pytest.raises(CompatError, match=f"^aioice {version('aioice')}: .*~=0.13.0$"):
        compat.install()
    monkeypatch.undo()
    monkeypatch.delattr(aioice.ice, "server_reflexive_candidate")
    with pytest.raises(CompatError, match="aioice .*server_reflexive_candidate"):
        compat.install()
    monkeypatch.undo()
    monkeypatch.setattr(aioice.Connection, "check_incoming", lambda self, message: None)
    with pytest.raises(CompatError, match="aioice .*check_incoming"):
        compat.install()
    monkeypatch.undo()

    class Receiver:  # no jitter buffer attribute
        pass

    with pytest.raises(CompatError, match=f"^aiortc {version('aiortc')}: RTCRtpReceiver"):
        aiortc_hooks.release_on_marker(Receiver())  # type: ignore[arg-type]
    with pytest.raises(CompatError, match="aioice .*nominated"):
        aioice_hooks.nominated_pair(object())  # type: ignore[arg-type]
    assert issubclass(CompatError, TcallError)


@pytest.mark.parametrize(
    "name", ["_send_rtcp_nack", "_send_rtcp_pli", "_handle_rtp_packet", "__init__"]
)
def test_the_video_receive_paths_targets_are_checked(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    if name == "__init__":  # a receiver that no longer keeps its decoder queue where we look
        init = aiortc.rtcrtpreceiver.RTCRtpReceiver.__init__

        def without_queue(self: object, *args: object) -> None:
            init(self, *args)  # type: ignore[arg-type]
            del self._RTCRtpReceiver__decoder_queue  # type: ignore[attr-defined]

        monkeypatch.setattr(aiortc.rtcrtpreceiver.RTCRtpReceiver, "__init__", without_queue)
        name = "_RTCRtpReceiver__decoder_queue"
    else:
        monkeypatch.delattr(aiortc.rtcrtpreceiver.RTCRtpReceiver, name)
    with pytest.raises(CompatError, match=f"^aiortc {version('aiortc')}: RTCRtpReceiver .*{name}"):
        aiortc_hooks.install()


def test_audio_levels_are_aiortcs_own_computed_in_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    aiortc_hooks.install()
    assert aiortc.rtp.compute_audio_level_dbov is aiortc_hooks.audio_level_dbov
    original = aiortc_hooks.AIORTC_AUDIO_LEVEL
    assert original is not None and original is not aiortc_hooks.audio_level_dbov
    rng = np.random.default_rng(7)
    blocks = [np.zeros(960), np.full(960, 32767), np.full(960, -32768), np.ones(960)]
    blocks += [rng.normal(0, scale, 960).clip(-32768, 32767) for scale in (3, 300, 3000, 30000)]
    blocks += [np.sin(np.arange(480) / 7) * amplitude for amplitude in (1, 100, 10000, 32767)]
    levels = set()
    for block in blocks:
        for layout in ("mono", "stereo"):
            samples = np.repeat(block, 2) if layout == "stereo" else block
            frame = av.AudioFrame.from_ndarray(
                samples.astype(np.int16).reshape(1, -1), format="s16", layout=layout
            )
            ours = aiortc_hooks.audio_level_dbov(frame)
            assert ours == original(frame), (layout, block[:4])
            assert aiortc_hooks.audio_level_dbov(frame) == ours  # again: from the one-frame cache
            levels.add(ours)
    assert {-127, 0} <= levels and len(levels) >= 8  # the blocks span the range
    monkeypatch.delattr(aiortc.rtp, "compute_audio_level_dbov")
    with pytest.raises(CompatError, match="aiortc .*compute_audio_level_dbov"):
        aiortc_hooks.install()


def test_supported_ranges_match_the_pins() -> None:
    pyproject = Path(__file__).parents[2] / "pyproject.toml"
    pins = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    assert f"aiortc{aiortc_hooks.SUPPORTED}" in pins
    assert f"aioice{aioice_hooks.SUPPORTED}" in pins
