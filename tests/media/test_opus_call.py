"""A real call between two Sessions on loopback: when a tenth of the audio packets are lost on the
way in, the sender protects what it sends from the receiver's reports (RED copies between two tcall
peers; Opus FEC alone with a peer that offers no RED), the receiver rebuilds lost packets from it
and conceals the rest, the audio plays on without gaps, and the stats say so."""

from __future__ import annotations

import asyncio
import random
import time

import pytest
from av import AudioFrame

from tcall.engine import compat
from tcall.engine.ice import IceSettings
from tcall.engine.media import red
from tcall.engine.media.audio import PacedAudioSource
from tcall.engine.media.sinks import AudioSink
from tcall.engine.session import Session
from tests.support.voice import speaking

AUDIO_PAYLOAD_TYPES = (96, red.PAYLOAD_TYPE)  # Opus (aiortc's first dynamic type), RED


class Recorder(AudioSink):
    def __init__(self) -> None:
        self.samples = 0
        self.first: float | None = None

    def play(self, frame: AudioFrame) -> None:
        self.first = self.first or time.monotonic()
        self.samples += frame.samples


def lose_audio(session: Session, fraction: float, seed: int = 7) -> list[int]:
    """Drop `fraction` of the RTP audio packets (a clear-text header byte says which) arriving at
    `session`, below aiortc (so its RTCP reports count them lost); returns the count dropped."""
    connection = compat.aiortc.ice_connection(session.pc)
    assert connection is not None
    deliver, rng, dropped = connection.data_received, random.Random(seed), [0]

    def maybe_lose(data: bytes, component: int) -> None:
        is_audio = len(data) > 1 and data[0] >> 6 == 2 and data[1] & 0x7F in AUDIO_PAYLOAD_TYPES
        if is_audio and rng.random() < fraction:
            dropped[0] += 1
            return
        deliver(data, component)

    connection.data_received = maybe_lose  # type: ignore[method-assign]
    return dropped


@pytest.mark.timeout(40)
@pytest.mark.parametrize("rebuilt_by", ["audio_red_recovered", "audio_fec_recovered"])
async def test_lost_audio_is_rebuilt_and_counted(
    monkeypatch: pytest.MonkeyPatch, rebuilt_by: str
) -> None:
    monkeypatch.setenv("TCALL_ICE_ADDRESSES", "127.0.0.1")
    if rebuilt_by == "audio_fec_recovered":  # the talker offers Opus first, as a browser does
        monkeypatch.setattr(compat.aiortc, "prefer_red", lambda transceiver: None)
    recorder = Recorder()
    talker = Session(
        ice=IceSettings(),
        video=None,
        audio=PacedAudioSource("voice", speaking()),
        audio_sink=None,
        on_state=lambda state: None,
        receive_video=False,
    )
    listener = Session(
        ice=IceSettings(),
        video=None,
        audio=None,
        audio_sink=recorder,
        on_state=lambda state: None,
        receive_video=False,
    )
    try:
        await talker.accept_answer(await listener.create_answer(await talker.create_offer()))
        await asyncio.gather(talker.wait_connected(10), listener.wait_connected(10))
        dropped = lose_audio(listener, 0.10)
        started = time.monotonic()
        figures: dict[str, object] = {}
        while time.monotonic() - started < 20:
            await asyncio.sleep(0.5)
            figures = (await listener.stats())["audio"]
            if int(figures[rebuilt_by]) >= 5 and time.monotonic() - started > 4:  # type: ignore[call-overload]
                break
        assert dropped[0] > 0
        assert talker.speech_encoder is not None and talker.speech_encoder.expected_loss_percent > 0
        assert figures[rebuilt_by] >= 5, figures  # type: ignore[operator]
        rebuilt = int(figures["audio_red_recovered"]) + int(figures["audio_fec_recovered"])  # type: ignore[call-overload]
        assert figures["audio_packets_lost"] >= rebuilt  # type: ignore[operator]
        red_copies = (await talker.stats())["audio"]["audio_red_copies"]
        assert (red_copies or 0) >= 1 if rebuilt_by == "audio_red_recovered" else red_copies is None
        # Every lost packet became audio: what played spans the time since the first frame.
        assert recorder.first is not None
        playing_for = time.monotonic() - recorder.first
        assert recorder.samples >= 0.9 * playing_for * 48000
    finally:
        await talker.close()
        await listener.close()
