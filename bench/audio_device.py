"""The audio device path alone: how long tcall's speaker and microphone take, and whether playout
stays steady, measured through a real PulseAudio null sink (what the speaker plays comes back on
the sink's monitor, which is the default microphone).

A click starts every tenth 20 ms frame handed to the speaker sink (`play`), frames paced on the
event loop as a network would deliver them (optionally with random arrival jitter); the microphone
source hears it. The figure `play -> heard` runs from `play()` to the moment the click entered the
microphone's 20 ms block (the block's arrival on the event loop minus the samples after the click):
the speaker's playout buffer, PortAudio and PulseAudio both ways. In a call, a sample also waits
for its 20 ms block to fill before it is encoded, so the device share of mouth-to-ear is this
figure plus 20 ms.

`legacy` is the device path as it was before issue #15 (20 ms device blocks, PortAudio's 'high'
latency, playback starting at 40 ms buffered and again after every underrun), for comparison in
the same run. `--hogs N` runs N busy processes beside it (the machine has 2 cores).

    python bench/audio_device.py [--seconds 20] [--hogs 0,2] [--jitter-ms 0] [--runs 1]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fractions
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from av import AudioFrame

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.support: the PulseAudio the tests start

from tcall.engine.media import sound  # noqa: E402
from tcall.engine.media.audio import BLOCK, SAMPLE_RATE, MicSource, sine_blocks  # noqa: E402
from tcall.engine.media.sinks import AudioSink, SpeakerSink  # noqa: E402
from tests.support.services import pulseaudio  # noqa: E402

CLICK_EVERY = 10  # frames: a click every 200 ms
THRESHOLD = 6000


class LegacySpeaker(AudioSink):
    """The speaker as it was: 20 ms blocks, 'high' latency, 40 ms prefill, silence on underrun."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buffer = np.zeros(0, dtype=np.int16)
        self._playing = False
        self.underruns = 0
        sd = sound.sounddevice()
        self._stream = sd.OutputStream(
            samplerate=SAMPLE_RATE, blocksize=BLOCK, channels=1, dtype="int16",
            callback=self._callback,
        )  # fmt: skip
        self._stream.start()

    def play(self, frame: AudioFrame) -> None:
        with self._lock:
            self._buffer = np.concatenate([self._buffer, frame.to_ndarray()[0]])[-6 * BLOCK :]

    def _callback(self, outdata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        with self._lock:
            if not self._playing and len(self._buffer) >= 2 * BLOCK:
                self._playing = True
            if self._playing and len(self._buffer) >= frames:
                outdata[:, 0] = self._buffer[:frames]
                self._buffer = self._buffer[frames:]
                return
            if self._playing:
                self.underruns += 1
                self._playing = False
        outdata.fill(0)

    async def stop(self) -> None:
        self._stream.stop()
        self._stream.close()


class LegacyMic(MicSource):
    """The microphone as it was: 20 ms device blocks at PortAudio's 'high' latency."""

    def __init__(self) -> None:
        block, latency = sound.DEVICE_BLOCK, sound.INPUT_LATENCY
        sound.DEVICE_BLOCK, sound.INPUT_LATENCY = BLOCK, "high"
        try:
            super().__init__(None)
        finally:
            sound.DEVICE_BLOCK, sound.INPUT_LATENCY = block, latency


def frames(seed: int) -> Iterator[tuple[AudioFrame, bool]]:
    """Quiet tone frames, every CLICK_EVERY-th starting with a 2 ms 2 kHz burst."""
    tone = sine_blocks(300.0, level=0.05)
    burst = (np.sin(2 * np.pi * 2000 * np.arange(96) / SAMPLE_RATE) * 24000).astype(np.int16)
    index = 0
    while True:
        samples = next(tone).copy()
        click = index % CLICK_EVERY == 0
        if click:
            samples[: len(burst)] = burst
        frame = AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate, frame.pts = SAMPLE_RATE, index * BLOCK
        frame.time_base = fractions.Fraction(1, SAMPLE_RATE)
        yield frame, click
        index += 1


async def measure(path: str, seconds: float, jitter_ms: float, seed: int) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    speaker: AudioSink = LegacySpeaker() if path == "legacy" else SpeakerSink(None, print)
    mic = LegacyMic() if path == "legacy" else MicSource(None)
    await asyncio.wait_for(mic.next_block(), 5)  # the first callback can take ~2 s
    heard: list[float] = []
    sent: list[float] = []

    async def listen() -> None:
        armed = True
        while True:
            block = await mic.next_block()
            now = loop.time()
            loud = np.flatnonzero(np.abs(block.astype(np.int32)) > THRESHOLD)
            if len(loud) and armed:
                heard.append(now - (BLOCK - int(loud[0])) / SAMPLE_RATE)
            armed = not len(loud)

    listener = asyncio.ensure_future(listen())
    rng = np.random.default_rng(seed)
    start = loop.time()
    count = int(seconds * SAMPLE_RATE / BLOCK)
    source = frames(seed)
    sent_at = 0
    while sent_at < count:
        # Deliver every frame that is due; with jitter, a frame is due up to jitter_ms late.
        due = start + sent_at * BLOCK / SAMPLE_RATE + rng.uniform(0, jitter_ms) / 1000
        await asyncio.sleep(max(0.0, due - loop.time()))
        frame, click = next(source)
        if click:
            sent.append(loop.time())
        speaker.play(frame)
        sent_at += 1
    await asyncio.sleep(BLOCK / SAMPLE_RATE)
    # Taken before the stream's end, which the sink rightly conceals as one more stall.
    if isinstance(speaker, SpeakerSink):
        figures: dict[str, Any] = speaker.figures() | {"os": sound.scheduling()}
    else:
        assert isinstance(speaker, LegacySpeaker)
        figures = {"stalls": speaker.underruns}
    await asyncio.sleep(0.3)
    listener.cancel()
    mic.stop()
    await speaker.stop()
    latencies = []
    for at in sent:
        later = [h - at for h in heard if 0 < h - at < 0.5]
        if later:
            latencies.append(later[0] * 1000)
    median = statistics.median(latencies) if latencies else None
    return {
        "path": path,
        "clicks": len(sent),
        "heard": len(latencies),
        "play_to_heard_ms_median": None if median is None else round(median, 1),
        "play_to_heard_ms_p90": round(float(np.percentile(latencies, 90)), 1)
        if latencies
        else None,
        "stalls_per_minute": round(figures["stalls"] * 60 / seconds, 1),
        **figures,
    }


@contextlib.contextmanager
def hogs(count: int) -> Iterator[None]:
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        yield
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--hogs", default="0,2", help="CPU hogs to run beside it, e.g. 0,2")
    parser.add_argument("--jitter-ms", type=float, default=0.0)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--paths", default="legacy,tcall")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, pulseaudio(Path(folder)) as env:
        os.environ.update(env)
        print(f"load {os.getloadavg()[0]:.2f}", file=sys.stderr)
        for hog_count in (int(n) for n in args.hogs.split(",")):
            with hogs(hog_count):
                for run in range(args.runs):
                    for path in args.paths.split(","):
                        result = asyncio.run(measure(path, args.seconds, args.jitter_ms, run))
                        print(
                            json.dumps({"hogs": hog_count, **result}),
                            flush=True,
                        )


if __name__ == "__main__":
    main()
