"""Plays a tone through tcall's speaker sink and records it with tcall's mic source.

Run as a script by the tests with PulseAudio's null sink as the default device and its monitor as the
default source; prints the dominant frequency it heard as JSON.
"""

from __future__ import annotations

import asyncio
import fractions
import json
import sys
import time

import numpy as np
from av import AudioFrame

from tcall.engine.media.audio import BLOCK, SAMPLE_RATE, MicSource, sine_blocks
from tcall.engine.media.sinks import SpeakerSink, open_audio_sink


async def main(frequency: float) -> None:
    sink = open_audio_sink()
    assert isinstance(sink, SpeakerSink), sink.notice
    mic = MicSource(None)
    first = await asyncio.wait_for(mic.next_block(), 5)  # the first callback can take ~2 s
    tone = sine_blocks(frequency, level=0.5)
    recorded: list[np.ndarray] = [first]
    start = time.monotonic()
    for index in range(150):  # 3 s of playback, paced like a network stream would be
        frame = AudioFrame.from_ndarray(next(tone).reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate, frame.pts = SAMPLE_RATE, index * BLOCK
        frame.time_base = fractions.Fraction(1, SAMPLE_RATE)
        sink.play(frame)
        while not mic._queue.empty():
            recorded.append(mic._queue.get_nowait())
        await asyncio.sleep(max(0.0, start + (index + 1) * 0.02 - time.monotonic()))
    mic.stop()
    await sink.stop()
    samples = np.concatenate(recorded[-75:]).astype(
        np.float32
    )  # the last 1.5 s, well after prefill
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    peak = float(np.fft.rfftfreq(len(samples), 1 / SAMPLE_RATE)[int(spectrum.argmax())])
    print(json.dumps({"peak_hz": peak, "rms": float(np.sqrt((samples**2).mean()))}))


if __name__ == "__main__":
    asyncio.run(main(float(sys.argv[1])))
