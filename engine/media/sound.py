"""Loading sounddevice lazily, so a machine without PortAudio gets a clear error instead of a crash."""

from __future__ import annotations

from types import ModuleType
from typing import Any

from engine.errors import DeviceError


def sounddevice() -> ModuleType:
    """The sounddevice module, or DeviceError when PortAudio is missing."""
    try:
        import sounddevice as sd
    except OSError as exc:  # raised at import when libportaudio2 is not installed
        raise DeviceError(
            "audio unavailable: PortAudio library not found (apt-get install libportaudio2)"
        ) from exc
    return sd


def list_devices(kind: str) -> list[dict[str, Any]]:
    """Devices with input (`kind="input"`) or output channels; empty when there is no audio system."""
    try:
        sd = sounddevice()
        devices = sd.query_devices()
    except (DeviceError, Exception):  # PortAudio errors have no common public base class
        return []
    key = "max_input_channels" if kind == "input" else "max_output_channels"
    return [dict(d) for d in devices if d[key] > 0]
