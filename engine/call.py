"""A call's media: the options a UI asks for, opening sources and sinks into a Session, and the
figures a summary reports."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tcall.engine.errors import TcallError
from tcall.engine.events import MediaFigures
from tcall.engine.ice import IceSettings
from tcall.engine.media.audio import (
    AudioSource,
    microphone_available,
    open_audio_source,
    parse_audio_spec,
)
from tcall.engine.media.sinks import median, open_audio_sink, percentile
from tcall.engine.media.video import (
    VideoSource,
    camera_available,
    open_video_source,
    parse_video_spec,
)
from tcall.engine.session import Session, StateListener

Notify = Callable[[str], None]


@dataclass
class CallOptions:
    video: str = "auto"  # auto: the camera if there is one, else the test pattern
    audio: str = "auto"  # auto: the microphone if there is one, else a sine tone
    codec: str = "vp8"
    duration: float | None = None  # None: until stopped
    connect_timeout: float = 15.0
    width: int = 640
    height: int = 480
    fps: float = 30.0
    speaker: str | None = None
    ice: IceSettings = field(default_factory=IceSettings)
    low_latency: bool = True
    camera_on: bool = True  # False: the call starts with the camera off (black frames)
    camera_chosen: bool = False  # the user said `--camera on|off`: it beats answer_with_camera
    receive_video: bool = True  # False: an audio-only call


def open_media(
    options: CallOptions, notice: Notify
) -> tuple[VideoSource | None, AudioSource | None]:
    """Open the sources the options name; `auto` falls back to generated media with a notice."""
    video_spec, audio_spec = options.video, options.audio
    parse_video_spec(video_spec)
    parse_audio_spec(audio_spec)
    if video_spec == "auto":
        video_spec = "camera" if camera_available() else "pattern"
        if video_spec == "pattern":
            notice("no camera found: sending a test pattern")
    if audio_spec == "auto":
        audio_spec = "mic" if microphone_available() else "sine"
        if audio_spec == "sine":
            notice("no microphone found: sending a 440 Hz tone")
    video = (
        None
        if video_spec == "none"
        else open_video_source(video_spec, options.width, options.height, options.fps)
    )
    try:
        audio = None if audio_spec == "none" else open_audio_source(audio_spec, notice)
    except TcallError:
        if video:
            video.stop()
        raise
    return video, audio


def open_session(options: CallOptions, notice: Notify, on_state: StateListener) -> Session:
    """Open the options' sources and sinks into a Session (DeviceError if a named one is missing)."""
    video, audio = open_media(options, notice)
    sink = open_audio_sink(options.speaker, notice)
    if sink.notice:
        notice(sink.notice)
    session = Session(
        ice=options.ice,
        video=video,
        audio=audio,
        audio_sink=sink,
        on_state=on_state,
        codec=options.codec,
        low_latency=options.low_latency,
        receive_video=options.receive_video,
    )
    if session.video_track is not None:
        session.video_track.enabled = options.camera_on
    return session


def media_figures(session: Session, dialed: float) -> MediaFigures:
    """What a call's media measured; `dialed` is time.monotonic() when the call was placed."""
    sink = session.video_sink
    first = sink.first_frame_at
    receiving_for = time.monotonic() - first if first else 0.0
    return MediaFigures(
        frames_sent=session.video_track.frames_sent if session.video_track else 0,
        frames_received=sink.frames_received,
        fps_received=round(sink.frames_received / receiving_for, 1) if receiving_for else 0.0,
        latency_ms_median=_round(median(sink.latencies_ms)),
        latency_ms_p95=_round(percentile(sink.latencies_ms, 0.95)),
        setup_ms=None if first is None else round((first - dialed) * 1000, 1),
        route=session.selected_route(),
    )


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
