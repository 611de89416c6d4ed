"""Loading sounddevice lazily (a machine without PortAudio gets a clear error instead of a crash),
and opening the low-latency device streams that the microphone and the speaker use."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import os
import threading
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

from tcall.engine.errors import DeviceError

SAMPLE_RATE = 48000
BLOCK = 960  # 20 ms at 48 kHz: Opus's natural frame size, what sources yield and sinks are fed

# What the device is asked for at a time, and how much PortAudio buffers. Measured through a
# PulseAudio null sink (speaker -> monitor -> microphone, bench/audio_device.py): 20 ms blocks at
# PortAudio's 'high' latency cost 40 ms there and back; 5 ms blocks at 'low' latency 10-15 ms,
# but underflow when the machine is loaded. So the speaker starts at 'low' and steps up the
# ladder when the device underflows (SpeakerSink reopens it: ~20 ms once PulseAudio runs). The
# microphone gets 40 ms from the start. That costs delay too: through ALSA's PulseAudio plugin the
# latency sets how much arrives at a time, so two of three 5 ms blocks come back to back and a
# 20 ms block is complete 5-5.5 ms late at the median (13-15 ms at the 99th percentile; at 'low':
# 0.2-0.4 and 2-4 ms), and the receiver's jitter buffer waits for the latest (its target 16-20 ms
# on loopback, 6-13 at 'low'). At 'low', calls with no load were faster and better (three without
# underruns: 85-96 ms one way, PESQ-WB 4.33-4.39; two at 40 ms: 100-112 ms, 4.14-4.15), but
# under two CPU hogs they fell (median 2.4 in 9 calls, against 3.5 at 40 ms, interleaved), so the
# microphone stays at 40 ms (session 15; README, "Delay with the processing on").
DEVICE_BLOCK = 240
OUTPUT_LATENCIES: tuple[str | float, ...] = ("low", 0.02, 0.04)
INPUT_LATENCY: str | float = 0.04

# How the device threads were scheduled, for the record (`scheduling()`): filled by the first
# callback of each stream, since PortAudio creates its callback thread only when the stream starts.
_scheduling: dict[str, str] = {}
_scheduling_lock = threading.Lock()


def sounddevice() -> ModuleType:
    """The sounddevice module, or DeviceError when PortAudio is missing."""
    try:
        import sounddevice as sd
    except OSError as exc:  # raised at import when libportaudio2 is not installed
        raise DeviceError(
            "audio unavailable: PortAudio library not found (apt-get install libportaudio2)"
        ) from exc
    _quiet_alsa()
    return sd


_ALSA_HANDLER = ctypes.CFUNCTYPE(
    None, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p
)


@functools.cache
def _quiet_alsa() -> Any:
    """Stop libasound printing "ALSA lib pcm.c:...: underrun occurred" on stderr, where the TUI
    draws: an underrun is counted (SpeakerSink.device_underruns) and handled, never news to the
    user. snd_lib_error_set_handler is ALSA's public API; the handler ignores the variadic rest.
    Cached: the handler must outlive every stream (ctypes frees it with its last reference)."""
    with contextlib.suppress(OSError, AttributeError):
        handler = _ALSA_HANDLER(lambda *args: None)
        ctypes.CDLL("libasound.so.2").snd_lib_error_set_handler(handler)
        return handler
    return None


def preload() -> None:
    """Load PortAudio now: it takes 60-90 ms here, which a call's setup would otherwise wait for,
    on both sides. Call it before any thread or event loop starts: loaded from a thread beside
    the app's, it left the TUI's relay link stuck connecting one time in three (PortAudio's audio
    backends may fork). Any error shows later, where audio is opened."""
    with contextlib.suppress(Exception):
        sounddevice()


def list_devices(kind: str) -> list[dict[str, Any]]:
    """Devices with input (`kind="input"`) or output channels; empty when there is no audio system."""
    try:
        sd = sounddevice()
        devices = sd.query_devices()
    except (DeviceError, Exception):  # PortAudio errors have no common public base class
        return []
    key = "max_input_channels" if kind == "input" else "max_output_channels"
    return [dict(d) for d in devices if d[key] > 0]


def start_stream(
    kind: str,
    device: str | None,
    callback: Callable[..., None],
    finished: Callable[[], None] | None = None,
    latency: str | float | None = None,
) -> Any:
    """A started 48 kHz mono int16 stream of DEVICE_BLOCK-sample blocks: `kind` is "microphone" or
    "speaker". `finished` runs on PortAudio's thread when the stream ends, also when the audio
    system goes away under it. `latency` defaults to the kind's first step (see above).

    DeviceError names the device when PortAudio cannot open it.
    """
    sd = sounddevice()
    stream_class = sd.InputStream if kind == "microphone" else sd.OutputStream
    if latency is None:
        latency = INPUT_LATENCY if kind == "microphone" else OUTPUT_LATENCIES[0]
    try:
        stream = stream_class(
            samplerate=SAMPLE_RATE,
            blocksize=DEVICE_BLOCK,
            latency=latency,
            channels=1,
            dtype="int16",
            device=device,
            callback=callback,
            finished_callback=finished,
        )
        stream.start()
    except (sd.PortAudioError, ValueError) as exc:
        raise DeviceError(f"{kind} {device or 'default'} could not be opened: {exc}") from exc
    return stream


def raise_priority(kind: str) -> None:
    """Ask for a better nice value for the calling thread (a device callback's), so playout keeps
    its pace when other processes load the CPU; where the OS refuses, run as it is.

    Not real-time scheduling: a SCHED_FIFO thread is inherited by whatever it starts, and a tcall
    process left spinning at FIFO priority starved a whole 2-core machine (load 21) in testing."""
    outcome = "normal"
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), -10)
        outcome = "nice -10"
    with _scheduling_lock:
        _scheduling[kind] = outcome


def scheduling() -> dict[str, str]:
    """How each kind of device thread ("microphone", "speaker") got scheduled, once it ran."""
    with _scheduling_lock:
        return dict(_scheduling)


class StreamWatch:
    """Tells the event loop, once, that a device stream stopped under a call: PortAudio ended it
    (the audio system went away: PulseAudio killed, a USB headset pulled) or its callbacks stopped
    coming for STALL_SECONDS once they had come steadily (PulseAudio may pause a new stream for
    ~2 s after its first callbacks while it sets up). The stream's owner then goes on without it.

    `beat` and `finished` run on PortAudio's thread; `on_lost(reason)` runs on the event loop.
    """

    STALL_SECONDS = 2.0
    STEADY_BEATS = 200  # one second of 5 ms callbacks

    def __init__(self, kind: str, on_lost: Callable[[str], None]) -> None:
        self.kind = kind
        self.lost = False
        self.closing = False
        self.last_beat: float | None = None  # time.monotonic() of the latest callback
        self.beats = 0
        self._thread: int | None = None  # the callback thread: a reopened stream has a new one
        self._on_lost = on_lost
        self._loop: asyncio.AbstractEventLoop | None = None
        with contextlib.suppress(RuntimeError):  # no loop: a test driving the callback by hand
            self._loop = asyncio.get_running_loop()
            self._timer = self._loop.call_later(self.STALL_SECONDS, self._check)

    def beat(self) -> None:
        """Called at the top of every device callback."""
        thread = threading.get_ident()
        if thread != self._thread:
            self._thread = thread
            raise_priority(self.kind)
        self.last_beat = time.monotonic()
        self.beats += 1

    def finished(self) -> None:
        if not self.closing and self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: the process is leaving
                self._loop.call_soon_threadsafe(self._lose, "the audio system closed it")

    def _check(self) -> None:
        if self.closing or self.lost or self._loop is None:
            return
        beat = self.last_beat
        steady = beat is not None and self.beats >= self.STEADY_BEATS
        if steady and beat is not None and time.monotonic() - beat > self.STALL_SECONDS:
            self._lose(f"no audio for {self.STALL_SECONDS:g} s")
            return
        self._timer = self._loop.call_later(self.STALL_SECONDS / 2, self._check)

    def _lose(self, reason: str) -> None:
        if self.lost or self.closing:
            return
        self.lost = True
        self._on_lost(reason)

    def close(self) -> None:
        self.closing = True
        if self._loop is not None:
            self._timer.cancel()


def close_quietly(stream: Any) -> None:
    """Stop and close a stream whose device may be gone, off the caller's thread: PortAudio can
    block on a dead device, and the event loop must not."""

    def close() -> None:
        with contextlib.suppress(Exception):
            stream.abort()
        with contextlib.suppress(Exception):
            stream.close()

    threading.Thread(target=close, name="close audio stream", daemon=True).start()
