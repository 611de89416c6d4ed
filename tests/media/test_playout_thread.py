"""A group call's members share one playout thread (engine/media/opus_receiver.py PlayoutThread):
each member's audio still comes out whole and on time, and a member who leaves stops only theirs."""

from __future__ import annotations

import time

import numpy as np

from tcall.engine.media.opus import FRAME, EncoderSettings, OpusEncoder
from tcall.engine.media.opus_receiver import OpusReceiver, PlayoutThread


def packets(count: int) -> list[bytes]:
    encoder = OpusEncoder(EncoderSettings(32, True, 0, 5))
    tone = (np.sin(np.arange(FRAME) * 0.05) * 8000).astype(np.int16)
    return [encoder.encode(tone) for _ in range(count)]


def test_two_members_on_one_thread_each_play_every_packet() -> None:
    shared = PlayoutThread()
    played: dict[str, int] = {"bob": 0, "carol": 0}

    def counter(name: str):  # noqa: ANN202 - a small closure
        return lambda frame: played.__setitem__(name, played[name] + frame.samples)

    bob = OpusReceiver(counter("bob"), shared=shared)
    carol = OpusReceiver(counter("carol"), shared=shared)
    assert bob._thread is carol._thread is shared.thread  # one thread, not one each
    data = packets(25)
    for seq, payload in enumerate(data):  # both send 0.5 s of audio in real time
        bob.receive(seq, seq * FRAME, payload, None)
        carol.receive(1000 + seq, 7 * FRAME + seq * FRAME, payload, None)
        time.sleep(0.02)
    time.sleep(0.3)  # the jitter buffer's delay
    assert played["bob"] >= 20 * FRAME and played["carol"] >= 20 * FRAME
    carol.stop()  # carol leaves: bob plays on
    before = dict(played)
    for seq, payload in enumerate(data, start=25):
        bob.receive(seq, seq * FRAME, payload, None)
        time.sleep(0.02)
    time.sleep(0.3)
    assert played["bob"] >= before["bob"] + 20 * FRAME and played["carol"] == before["carol"]
    bob.stop()
    shared.stop()
    assert not shared.thread.is_alive()
