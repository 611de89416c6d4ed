"""What media devices this machine has: cameras, microphones and speakers."""

from __future__ import annotations

import glob
from dataclasses import asdict, dataclass

from tcall.engine.media.sound import list_devices


@dataclass(frozen=True)
class Device:
    kind: str  # camera | microphone | speaker
    spec: str  # what to pass to --video / --audio / the speaker setting
    name: str


def list_cameras() -> list[Device]:
    devices = []
    for path in sorted(glob.glob("/dev/video[0-9]*")):
        index = path.removeprefix("/dev/video")
        devices.append(Device("camera", f"camera:{index}", path))
    return devices


def list_all() -> list[Device]:
    cameras = list_cameras()
    mics = [Device("microphone", f"mic:{d['name']}", d["name"]) for d in list_devices("input")]
    speakers = [Device("speaker", d["name"], d["name"]) for d in list_devices("output")]
    return cameras + mics + speakers


def as_dicts(devices: list[Device]) -> list[dict[str, str]]:
    return [asdict(d) for d in devices]
