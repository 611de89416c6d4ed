"""Bare aiortc, the baseline of the audio benchmark: one side of an audio-only call, with the
microphone and speaker through sounddevice as a plain app would write it.

    python -m tests.support.bare_audio callee ADDRESS PORT   (prints "ready" once listening)
    python -m tests.support.bare_audio caller ADDRESS PORT   (ADDRESS:PORT is the callee's)

The offer and answer cross one TCP connection, a line of JSON each. Each side prints
{"event": "connected"} once ICE is connected and runs until terminated. The microphone hands 20 ms
blocks to aiortc; the speaker plays decoded frames from a FIFO of at most MAX_QUEUED frames (the
oldest go, so the backlog from before the output stream started is not kept as delay), silence
when it runs dry.
aiortc's defaults otherwise: its jitter buffer, Opus at its own bitrate, no FEC, no concealment.
iceServers is empty: host candidates only, no STUN server contacted.
"""

from __future__ import annotations

import asyncio
import collections
import fractions
import json
import signal
import sys
import threading
from typing import Any

import numpy as np
import sounddevice as sd
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame

RATE = 48000
BLOCK = 960
MAX_QUEUED = 4  # 80 ms


class Microphone(MediaStreamTrack):
    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[np.ndarray] = asyncio.Queue()
        self.samples = 0
        self.stream = sd.InputStream(
            samplerate=RATE,
            blocksize=BLOCK,
            channels=1,
            dtype="int16",
            latency="low",
            callback=self.captured,
        )
        self.stream.start()

    def captured(self, indata: np.ndarray, frames: int, time: Any, status: Any) -> None:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, indata[:, 0].copy())

    async def recv(self) -> AudioFrame:
        block = await self.queue.get()
        frame = AudioFrame.from_ndarray(block.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate, frame.time_base = RATE, fractions.Fraction(1, RATE)
        frame.pts, self.samples = self.samples, self.samples + len(block)
        return frame


class Speaker:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.fifo: collections.deque[np.ndarray] = collections.deque(maxlen=MAX_QUEUED)
        self.pending = np.zeros(0, dtype=np.int16)
        self.stream = sd.OutputStream(
            samplerate=RATE,
            blocksize=BLOCK,
            channels=1,
            dtype="int16",
            latency="low",
            callback=self.wanted,
        )
        self.stream.start()

    def wanted(self, outdata: np.ndarray, frames: int, time: Any, status: Any) -> None:
        with self.lock:
            while len(self.pending) < frames and self.fifo:
                self.pending = np.concatenate([self.pending, self.fifo.popleft()])
            if len(self.pending) >= frames:
                outdata[:, 0] = self.pending[:frames]
                self.pending = self.pending[frames:]
            else:
                outdata.fill(0)

    async def play(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            assert isinstance(frame, AudioFrame)
            channels = len(frame.layout.channels)
            samples = frame.to_ndarray().reshape(-1, channels).mean(axis=1).astype(np.int16)
            with self.lock:
                self.fifo.append(samples)


async def call(role: str, address: str, port: int) -> None:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTrack(Microphone())
    speaker = Speaker()
    connected = asyncio.Event()

    @pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        asyncio.ensure_future(speaker.play(track))

    @pc.on("connectionstatechange")
    def on_state() -> None:
        if pc.connectionState == "connected":
            connected.set()

    async def negotiate(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if role == "caller":
            await pc.setLocalDescription(await pc.createOffer())
            writer.write(json.dumps({"sdp": pc.localDescription.sdp}).encode() + b"\n")
            answer = json.loads(await reader.readline())
            await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
        else:
            offer = json.loads(await reader.readline())
            await pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], "offer"))
            await pc.setLocalDescription(await pc.createAnswer())
            writer.write(json.dumps({"sdp": pc.localDescription.sdp}).encode() + b"\n")
        await writer.drain()

    if role == "caller":
        await negotiate(*await asyncio.open_connection(address, port))
    else:
        server = await asyncio.start_server(negotiate, address, port)
        print("ready", flush=True)
    await connected.wait()
    print(json.dumps({"event": "connected"}), flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    if role == "callee":
        server.close()
    await pc.close()


if __name__ == "__main__":
    asyncio.run(call(sys.argv[1], sys.argv[2], int(sys.argv[3])))
