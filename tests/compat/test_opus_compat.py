"""The libopus tcall loads (PyAV's bundled copy, else the system's), the Opus FEC it offers in SDP,
and the audio hooks into aiortc's sender and receiver."""

from __future__ import annotations

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection

from tcall.engine import compat
from tcall.engine.compat import aiortc as aiortc_hooks
from tcall.engine.compat import encoder as encoder_hooks
from tcall.engine.compat import opus as opus_hooks
from tcall.engine.errors import CompatError


def test_libopus_loads_with_in_band_fec_decoding() -> None:
    lib = opus_hooks.load()
    assert opus_hooks.version_of(lib) >= (1, 1)
    assert all(hasattr(lib, name) for name in opus_hooks.NEEDED)


def test_no_usable_libopus_is_a_compat_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(opus_hooks, "_candidates", lambda: ["/nonexistent/libopus.so.0"])
    opus_hooks.load.cache_clear()
    try:
        with pytest.raises(CompatError, match="libopus"):
            opus_hooks.load()
    finally:
        opus_hooks.load.cache_clear()


async def test_offers_carry_opus_in_band_fec_and_the_hooks_take_their_slots() -> None:
    compat.install()
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        transceiver = pc.addTransceiver("audio")
        encoder_hooks.encode_with(transceiver.sender, lambda codecs: None)
        aiortc_hooks.tap_opus(transceiver.receiver, lambda packet: None, lambda packet, types: None)
        assert isinstance(
            transceiver.receiver._RTCRtpReceiver__jitter_buffer, aiortc_hooks._OpusTap
        )
        await pc.setLocalDescription(await pc.createOffer())
        assert "useinbandfec=1" in pc.localDescription.sdp
        assert "minptime=10" in pc.localDescription.sdp
    finally:
        await pc.close()


def test_a_receiver_without_its_buffer_slot_is_a_compat_error() -> None:
    class NotAReceiver:
        pass

    with pytest.raises(CompatError):
        aiortc_hooks.tap_opus(  # type: ignore[arg-type]
            NotAReceiver(), lambda packet: None, lambda packet, types: None
        )
