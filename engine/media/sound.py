"""Loading sounddevice lazily, so a machine without PortAudio gets a clear error instead of a crash."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from types import ModuleType
from typing import Any

from tcall.engine.errors import DeviceError

SAMPLE_RATE = 48000
BLOCK = 960  # 20 ms at 48 kHz: Opus's natural frame size


def sounddevice() -> ModuleType:
    """The sounddevice module, or DeviceError when PortAudio is missing."""
    try:
        import sounddevice as sd
    except OSError as exc:  # raised at import when libportaudio2 is not installed
        raise DeviceError(
            "audio unavailable: PortAudio library not found (apt-get install libportaudio2)"
        ) from exc
    return sd


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


def start_stream(kind: str, device: str | None, callback: Callable[..., None]) -> Any:
    """A started 48 kHz mono int16 stream of 20 ms blocks: `kind` is "microphone" or "speaker".

    DeviceError names the device when PortAudio cannot open it.
    """
    sd = sounddevice()
    stream_class = sd.InputStream if kind == "microphone" else sd.OutputStream
    try:
        stream = stream_class(
            samplerate=SAMPLE_RATE,
            blocksize=BLOCK,
            channels=1,
            dtype="int16",
            device=device,
            callback=callback,
        )
        stream.start()
    except (sd.PortAudioError, ValueError) as exc:
        raise DeviceError(f"{kind} {device or 'default'} could not be opened: {exc}") from exc
    return stream
