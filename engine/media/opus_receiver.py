"""What tcall does with received Opus packets: an adaptive jitter buffer (audio_jitter.py), then the
decoder (opus.py), on a playout thread of its own that hands each 20 ms of audio to the speaker.

It takes the place of aiortc's audio receive path, whose fixed buffer (16 packets, 4 held back:
80 ms) throws away the packets after a loss and, once a burst has filled it, never drains again.
Packets come in from the event loop (`receive`, through engine/compat/aiortc.py `tap_opus`); the
playout thread wakes at each tick the buffer schedules, so playout keeps its pace when the event
loop is busy, and a tick that finds no packet is rebuilt from FEC or concealed, never silent.
The thread asks for a better nice value where the OS allows it (as the device threads do).
"""

from __future__ import annotations

import contextlib
import fractions
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from av import AudioFrame

from tcall.engine.media.audio_jitter import AudioJitterBuffer, Playout, Step
from tcall.engine.media.opus import SAMPLE_RATE, OpusDecoder, OpusError, has_fec, packet_samples
from tcall.engine.media.red import Copy

Deliver = Callable[[AudioFrame], None]
QUIET_DBOV = (
    45  # RTP audio level (RFC 6464) at or below -45 dBov: a pause, where a cut is inaudible
)
LATE_CATCH_UP = 0.25  # s: a thread this far behind its schedule starts over rather than rushing
TIME_BASE = fractions.Fraction(1, SAMPLE_RATE)


class OpusReceiver:
    """Received Opus packets in, decoded mono 48 kHz frames out to `deliver` (on the playout thread).

    A 1:1 call's receiver has a playout thread of its own; a group call's members share one
    (`shared`, a PlayoutThread), since five threads each waking 50 times a second cost more than
    the decoding they do (measured: 11.7% of a core for five members' audio, 3% of it decoding).
    """

    def __init__(
        self,
        deliver: Deliver,
        clock: Callable[[], float] = time.monotonic,
        shared: PlayoutThread | None = None,
    ) -> None:
        self.buffer = AudioJitterBuffer(rate=SAMPLE_RATE)
        self.scheduling = "normal"
        self.decode_errors = 0
        self.malformed = 0  # packets that were not Opus, or RED that did not parse
        self._deliver = deliver
        self._clock = clock
        self._decoder = OpusDecoder()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._pts = 0
        self._shared = shared
        if shared is not None:
            self._wake = shared.wake
            self._thread = shared.thread
            shared.add(self)
        else:
            self._wake = threading.Event()
            self._thread = threading.Thread(target=self._run, name="audio-playout", daemon=True)
            self._thread.start()

    # --- the event loop's side -------------------------------------------------------------

    def receive(
        self,
        seq: int,
        timestamp: int,
        payload: bytes,
        level: int | None,
        copies: Sequence[Copy] = (),
    ) -> None:
        """One RTP packet's Opus payload; `level` is its RFC 6464 audio level (0 loudest, 127
        silence) when the sender set one; `copies` are the earlier packets it carried (RED)."""
        samples = packet_samples(payload)
        if samples is None:
            self.malformed += 1
            return  # not an Opus packet: nothing to decode, nothing to conceal with
        quiet = level is not None and level >= QUIET_DBOV
        with self._lock:
            started = self.buffer.started
            self.buffer.insert(
                seq,
                timestamp,
                payload,
                self._clock(),
                samples=samples,
                fec=has_fec(payload),
                quiet=quiet,
                cover=len(copies),
            )
            for copy in copies:
                self.buffer.insert_copy(
                    copy.seq,
                    copy.timestamp,
                    copy.payload,
                    samples=copy.samples,
                    fec=has_fec(copy.payload),
                )
        if not started:
            self._wake.set()

    def new_stream(self) -> None:
        """The next packet is the first of another sender's stream (AudioJitterBuffer.new_stream)."""
        with self._lock:
            self.buffer.new_stream()

    def figures(self) -> dict[str, Any]:
        """The audio receive figures for stats (cumulative counts since the call started)."""
        with self._lock:
            counters = self.buffer.counters
            played = counters.samples_played
            return {
                "audio_packets_received": counters.received,
                "audio_packets_lost": counters.lost,
                "audio_fec_recovered": counters.recovered,
                "audio_concealed": counters.concealed,
                "audio_late": counters.late,
                "audio_underruns": counters.underruns,
                "audio_concealed_pct": round(100 * counters.samples_concealed / played, 2)
                if played
                else 0.0,
                "audio_jitter_buffer_ms": round(self.buffer.delay() * 1000, 1),
                "audio_jitter_target_ms": round(self.buffer.target_delay() * 1000, 1),
                "audio_red_recovered": counters.red_recovered,
                "audio_packets_malformed": self.malformed,
            }

    def stop(self) -> None:
        self._stopping.set()
        if self._shared is not None:
            self._shared.remove(self)
            return
        self._wake.set()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=1.0)

    # --- the playout thread ----------------------------------------------------------------

    def _run(self) -> None:
        self.scheduling = _raise_priority()
        while not self._stopping.is_set():
            with self._lock:
                due = self.buffer.next_due()
            if due is None:
                self._wake.wait(0.5)
                self._wake.clear()
                continue
            wait = due - self._clock()
            if wait > 0:
                if self._stopping.wait(wait):
                    break
            elif -wait > LATE_CATCH_UP:
                self._restart_schedule(-wait)
                continue
            with self._lock:
                steps = self.buffer.pop(due)
            self._play(steps)

    def next_due(self) -> float | None:
        """When the next 20 ms is due (None: nothing scheduled yet)."""
        with self._lock:
            return None if self._stopping.is_set() else self.buffer.next_due()

    def play_due(self, due: float) -> None:
        """Play what is due at `due` (the shared thread's side of `_run`)."""
        with self._lock:
            steps = self.buffer.pop(due)
        self._play(steps)

    def _restart_schedule(self, behind: float) -> None:
        """The thread was starved for longer than any jitter (a stopped process, a swapped-out
        machine): move the schedule to now instead of racing through the backlog."""
        with self._lock:
            self.buffer.postpone(behind)

    def _play(self, steps: list[Playout]) -> None:
        for step in steps:
            try:
                pcm = self._decode(step)
            except OpusError:
                self.decode_errors += 1
                pcm = self._decoder.conceal(step.samples)
            pcm = pcm[step.skip :]
            if step.audible and len(pcm):
                self._deliver(self._frame(pcm))

    def _decode(self, step: Playout) -> np.ndarray:
        if step.step is Step.PLAY and step.payload is not None:
            return self._decoder.decode(step.payload)
        if step.step is Step.RECOVER and step.payload is not None:
            return self._decoder.recover(step.payload, step.samples)
        return self._decoder.conceal(step.samples)

    def _frame(self, pcm: np.ndarray) -> AudioFrame:
        frame = AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        frame.pts = self._pts
        frame.time_base = TIME_BASE
        self._pts += len(pcm)
        return frame


class PlayoutThread:
    """One playout thread for several OpusReceivers (a group call's members): it plays whichever
    receiver is due next, as each receiver's own thread would."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._receivers: tuple[OpusReceiver, ...] = ()  # replaced whole: read without a lock
        self.wake = threading.Event()  # a receiver came or started: look again
        self._stopping = threading.Event()
        self.scheduling = "normal"
        self.thread = threading.Thread(target=self._run, name="audio-playout", daemon=True)
        self.thread.start()

    def add(self, receiver: OpusReceiver) -> None:
        self._receivers = (*self._receivers, receiver)
        self.wake.set()

    def remove(self, receiver: OpusReceiver) -> None:
        self._receivers = tuple(r for r in self._receivers if r is not receiver)

    def stop(self) -> None:
        self._stopping.set()
        self.wake.set()
        if threading.current_thread() is not self.thread:
            self.thread.join(timeout=1.0)

    def _run(self) -> None:
        self.scheduling = _raise_priority()
        while not self._stopping.is_set():
            due_next: tuple[float, OpusReceiver] | None = None
            for receiver in self._receivers:
                due = receiver.next_due()
                if due is not None and (due_next is None or due < due_next[0]):
                    due_next = (due, receiver)
            if due_next is None:
                self.wake.wait(0.5)
                self.wake.clear()
                continue
            due, receiver = due_next
            wait = due - self._clock()
            if wait > 0:
                # A receiver that starts meanwhile may be due sooner: it sets `wake`.
                if self.wake.wait(wait):
                    self.wake.clear()
                continue
            if -wait > LATE_CATCH_UP:
                receiver._restart_schedule(-wait)
                continue
            receiver.play_due(due)


def _raise_priority() -> str:
    """A better nice value for the calling thread where allowed; says which it got. Not
    real-time scheduling: see engine/media/sound.py raise_priority."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), -10)
        return "nice -10"
    return "normal"
