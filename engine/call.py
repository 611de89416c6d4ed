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
    MicSource,
    microphone_available,
    open_audio_source,
    parse_audio_spec,
)
from tcall.engine.media.levels import MicLevel
from tcall.engine.media.processing import (
    AudioProcessing,
    FarEndReference,
    MicProcessor,
    ProcessedAudioSource,
)
from tcall.engine.media.sinks import (
    AudioSink,
    SpeakerSink,
    median,
    open_audio_sink,
    percentile,
)
from tcall.engine.media.video import (
    VideoSource,
    camera_available,
    open_video_source,
    parse_video_spec,
)
from tcall.engine.session import Session, StateListener
from tcall.engine.settings import Settings

Notify = Callable[[str], None]
AUDIO_SETTINGS = ("echo_cancellation", "noise_suppression", "auto_gain", "audio_bitrate")


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
    # The microphone's processing and Opus's bitrate; None: as the settings of the same names say.
    echo_cancellation: bool | None = None
    noise_suppression: bool | None = None
    auto_gain: bool | None = None
    audio_bitrate: int | None = None
    speaker_latency: str | None = None  # "low" or "steady"; None: as the setting says
    # Generated sources (sine, file) go out untouched unless this is set: a test or a benchmark
    # that plays a file as a talker's voice wants it processed as a microphone would be.
    process_generated_audio: bool = False


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


def audio_settings(options: CallOptions) -> tuple[AudioProcessing, int]:
    """The microphone's processing stages and the Opus bitrate (kbps): the options' own values,
    and the user's settings (the properties of the same names) for those left as None."""
    chosen = {key: getattr(options, key) for key in AUDIO_SETTINGS}
    if None in chosen.values():
        saved = Settings.load()
        chosen = {key: getattr(saved, key) if v is None else v for key, v in chosen.items()}
    kbps = int(chosen.pop("audio_bitrate"))
    return AudioProcessing(**chosen), kbps


def speaker_steady(options: CallOptions) -> bool:
    """Whether the speaker starts at its steadiest latency: the option, else the setting."""
    if options.speaker_latency is not None:
        return options.speaker_latency == "steady"
    return Settings.load().speaker_steady


def process_audio(
    audio: AudioSource,
    sink: AudioSink,
    processing: AudioProcessing,
    level: MicLevel | None,
    generated_too: bool = False,
) -> ProcessedAudioSource:
    """The source with the processing (for a microphone, or any source with `generated_too`) and
    the level meter; what the speaker plays becomes the echo canceller's reference."""
    processor: MicProcessor | None = None
    reference: FarEndReference | None = None
    if processing.active and (generated_too or isinstance(audio, MicSource)):
        processor = MicProcessor(processing)
        if processing.echo_cancellation and isinstance(sink, SpeakerSink):
            reference = FarEndReference()
            sink.on_played = reference.push
    return ProcessedAudioSource(audio, processor, reference, level)


@dataclass
class LocalMedia:
    """A call's sources (the audio with its processing) and speaker, opened, and the Opus bitrate
    the settings ask for."""

    video: VideoSource | None
    audio: AudioSource | None
    sink: AudioSink
    audio_kbps: int


def open_local(options: CallOptions, notice: Notify, mic_level: MicLevel | None) -> LocalMedia:
    """Open the options' sources and speaker (DeviceError if a named one is missing); `mic_level`
    hears the level of what the microphone sends."""
    processing, kbps = audio_settings(options)
    video, audio = open_media(options, notice)
    sink = open_audio_sink(options.speaker, notice, steady=speaker_steady(options))
    if sink.notice:
        notice(sink.notice)
    if audio is not None:
        audio = process_audio(audio, sink, processing, mic_level, options.process_generated_audio)
    return LocalMedia(video, audio, sink, kbps)


def open_session(
    options: CallOptions,
    notice: Notify,
    on_state: StateListener,
    mic_level: MicLevel | None = None,
) -> Session:
    """Open the options' sources and sinks into a Session (DeviceError if a named one is missing);
    `mic_level` hears the level of what the microphone sends."""
    local = open_local(options, notice, mic_level)
    session = Session(
        ice=options.ice,
        video=local.video,
        audio=local.audio,
        audio_sink=local.sink,
        on_state=on_state,
        codec=options.codec,
        low_latency=options.low_latency,
        receive_video=options.receive_video,
        audio_bitrate=local.audio_kbps,
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
