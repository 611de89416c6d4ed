"""The signed credential lists against a real aiortc: what `sdp_credentials` reads from an SDP
aiortc wrote (gathering binds real UDP sockets, so this is not a unit test)."""

from __future__ import annotations

from aiortc import RTCConfiguration, RTCPeerConnection
from aiortc.sdp import SessionDescription

from tcall.engine.wire import sdp_credentials


async def test_credentials_match_what_aiortc_reads_from_its_own_sdp() -> None:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        pc.addTransceiver("audio")
        pc.addTransceiver("video")
        await pc.setLocalDescription(await pc.createOffer())
        sdp = pc.localDescription.sdp
    finally:
        await pc.close()
    parsed = SessionDescription.parse(sdp)
    creds = sdp_credentials(sdp)
    dtls = [m.dtls for m in parsed.media if m.dtls is not None]
    ice = [m.ice for m in parsed.media if m.ice is not None]
    assert len(dtls) == len(ice) == len(parsed.media) == 2
    expected_dtls = {f"{fp.algorithm} {fp.value}" for d in dtls for fp in d.fingerprints}
    assert expected_dtls and set(creds.dtls) == expected_dtls
    assert set(creds.ice_ufrag) == {i.usernameFragment for i in ice}
    assert set(creds.ice_pwd) == {i.password for i in ice}
