"""tcall's Opus through libopus: FEC only while loss is expected, a lost frame rebuilt from the next
packet's FEC closer to the truth than concealment, concealment that is never silence, and the
aiortc encoder's loss tracking."""

from __future__ import annotations

import ctypes

import av
import numpy as np
import pytest

from tcall.engine.media import opus
from tcall.engine.media.opus import (
    FRAME,
    EncoderSettings,
    OpusDecoder,
    OpusEncoder,
    OpusError,
    has_fec,
    packet_samples,
)
from tcall.engine.media.opus_sender import SpeechEncoder
from tests.support.voice import voice


def frames(signal: np.ndarray) -> list[np.ndarray]:
    return [signal[i : i + FRAME] for i in range(0, len(signal) - FRAME + 1, FRAME)]


def encode(loss_percent: int, seconds: float = 2.0) -> list[bytes]:
    encoder = OpusEncoder(EncoderSettings(packet_loss_percent=loss_percent))
    return [encoder.encode(block) for block in frames(voice(seconds))]


def snr_db(truth: np.ndarray, estimate: np.ndarray) -> float:
    error = truth.astype(np.float64) - estimate.astype(np.float64)
    return float(10 * np.log10(np.sum(truth.astype(np.float64) ** 2) / max(1.0, np.sum(error**2))))


def test_fec_is_sent_only_while_loss_is_expected() -> None:
    assert not any(has_fec(p) for p in encode(loss_percent=0))
    assert sum(has_fec(p) for p in encode(loss_percent=10)) > 50  # of 100: the voiced ones


def test_packets_are_20_ms() -> None:
    assert {packet_samples(p) for p in encode(0)} == {FRAME}
    assert packet_samples(b"") is None
    assert packet_samples(b"\xff") is None  # a code-3 packet with no frame count


def test_the_event_loops_packet_queries_keep_the_gil() -> None:
    # Asked of every packet on the event loop: releasing the GIL there cost up to a switch
    # interval per packet in a busy group call (engine/media/opus.py _packet_lib).
    assert isinstance(opus._packet_lib(), ctypes.PyDLL)
    assert not isinstance(opus._lib(), ctypes.PyDLL)  # encode and decode let other threads run


def test_a_lost_frame_is_rebuilt_from_fec_better_than_it_is_concealed() -> None:
    packets = encode(loss_percent=20)
    truth_decoder = OpusDecoder()
    truth = [truth_decoder.decode(p) for p in packets]
    wins = 0
    lost_frames = range(20, 90, 7)
    for lost in lost_frames:
        if not has_fec(packets[lost + 1]):
            continue
        recovering, concealing = OpusDecoder(), OpusDecoder()
        for packet in packets[:lost]:
            recovering.decode(packet)
            concealing.decode(packet)
        rebuilt = recovering.recover(packets[lost + 1], FRAME)
        concealed = concealing.conceal(FRAME)
        assert len(rebuilt) == len(concealed) == FRAME
        wins += snr_db(truth[lost], rebuilt) > snr_db(truth[lost], concealed) + 3
    assert wins >= 6


def test_concealment_continues_the_voice_rather_than_going_silent() -> None:
    decoder = OpusDecoder()
    for packet in encode(0)[:38]:  # up to 0.76 s, the loud middle of a syllable
        decoder.decode(packet)
    concealed = decoder.conceal(FRAME)
    assert np.sqrt(np.mean(concealed.astype(np.float64) ** 2)) > 300


def test_a_corrupt_packet_is_an_opus_error_not_a_crash() -> None:
    decoder = OpusDecoder()
    with pytest.raises(OpusError):
        decoder.decode(b"\xff\xff\xff")  # a code-3 packet claiming more frames than it holds


def test_the_speech_encoder_follows_reported_loss_up_at_once_and_down_slowly() -> None:
    encoder = SpeechEncoder(bitrate_kbps=32)
    assert encoder.expected_loss_percent == 0
    encoder.report_loss(0.08)
    assert encoder.expected_loss_percent == 8
    encoder.report_loss(0.0)
    assert 0 < encoder.expected_loss_percent < 8
    for _ in range(40):
        encoder.report_loss(0.0)
    assert encoder.expected_loss_percent == 0
    encoder.report_loss(0.9)
    assert encoder.expected_loss_percent == 30  # capped


def test_the_speech_encoder_sends_mono_20_ms_packets_from_any_frame() -> None:
    encoder = SpeechEncoder()
    stereo = np.repeat(voice(0.02).reshape(1, -1), 2, axis=0).T.reshape(1, -1)
    frame = av.AudioFrame.from_ndarray(stereo, format="s16", layout="stereo")
    frame.sample_rate = 48000
    payloads, first = encoder.encode(frame)
    payloads2, second = encoder.encode(frame)
    assert len(payloads) == len(payloads2) == 1
    assert second - first == FRAME
    assert packet_samples(payloads[0]) == FRAME
    assert payloads[0][0] & 0x04 == 0  # the TOC's stereo bit: mono
