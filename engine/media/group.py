"""One group call's local media, shared by every pair of the mesh (issue #17).

Each pair of members has its own Session (its own RTCPeerConnection, signed as a 1:1 call is), but
the camera, the microphone and the speaker are opened once:

- the camera is read once (engine/media/fanout.py) and each frame encoded once, whatever the group's
  size: every pair's video sender sends the same payloads (engine/media/shared_encoder.py), at the
  lowest estimate among the pairs, with a keyframe for all when any pair asks for one;
- the microphone and its processing run once and each 20 ms block is Opus-encoded once, with
  in-band FEC for the pair that loses the most (engine/media/opus_sender.py SharedSpeech);
- what each pair receives is mixed into one speaker (engine/media/playout.py Mix), each member in
  a bounded buffer of its own, and the mix is the echo canceller's far-end reference.

Bitrate floors per pair, for 5 uplinks on a home connection: video follows each estimate down to
the ladder's floor (engine/media/adapt.py MIN_KBPS, 60 kbps; since the stream is shared, that is
5 x 60 kbps at worst), and starts lower than a 1:1 call's (GROUP_START_KBPS: before the first
estimate every pair gets the start rate at once); Opus goes at GROUP_AUDIO_KBPS unless the call's
options name a bitrate.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from aiortc.codecs.base import Encoder
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from tcall.engine.call import CallOptions, Notify, open_local
from tcall.engine.compat.encoder import AdaptiveVideoEncoder, realtime_encoder
from tcall.engine.ice import IceSettings
from tcall.engine.media.audio import AudioSource
from tcall.engine.media.fanout import AudioFanout, VideoFanout
from tcall.engine.media.levels import MicLevel
from tcall.engine.media.opus_receiver import PlayoutThread
from tcall.engine.media.opus_sender import SharedSpeech, SpeechBranch
from tcall.engine.media.playout import Mix
from tcall.engine.media.shared_encoder import SharedEncoder, VideoEncoderBranch
from tcall.engine.media.sinks import AudioSink, MixInput, SpeakerSink
from tcall.engine.media.video import VideoSource
from tcall.engine.session import Session, SharedSending, StateListener

# 5 pairs at 1:1's 500 kbps start would put 2.5 Mbit/s on the uplink before the first estimate;
# 250 kbps is the ladder's 20 fps rung at full size, more than a 320x240@15 group source needs.
GROUP_START_KBPS = 250
# Opus for each of up to 5 pairs: 32 kbps scored PESQ-WB 4.28 clean, 3.74 at 5% loss against 48
# kbps's 4.42 and 4.14 (engine/media/opus_sender.py), and saves 80 kbit/s of a 5-pair uplink.
GROUP_AUDIO_KBPS = 32


@dataclass(eq=False)  # known by identity: the shared encoders key their estimates by it
class _Pair:
    """What the group keeps of one pair: its mix input and its encoders' branches."""

    sink: MixInput
    video: list[VideoEncoderBranch] = field(default_factory=list)
    speech: list[SpeechBranch] = field(default_factory=list)


class GroupMedia:
    """One group call's local media, shared by every pair."""

    def __init__(
        self,
        options: CallOptions,
        video: VideoSource | None,
        audio: AudioSource | None,
        speaker: AudioSink,
        audio_kbps: int,
    ) -> None:
        self.options = options
        self.speaker = speaker
        self.mix = Mix()  # read by the speaker's device; without one, nothing plays it
        self.playout = PlayoutThread()  # every member's received audio, on one thread
        if isinstance(speaker, SpeakerSink):
            speaker.output = self.mix
        self.video = VideoFanout(video) if video is not None else None
        self.audio = AudioFanout(audio) if audio is not None else None
        if self.video is not None:
            self.video.enabled = options.camera_on
        self.speech = SharedSpeech(audio_kbps)
        self.audio_kbps = audio_kbps
        self._video_encoders: dict[str, SharedEncoder] = {}  # by codec: pairs may differ
        self._pairs: dict[Session, _Pair] = {}

    @classmethod
    def open(cls, options: CallOptions, notice: Notify, mic_level: MicLevel | None) -> GroupMedia:
        """Open the options' sources (DeviceError as open_session does) and the speaker, once."""
        local = open_local(options, notice, mic_level)
        kbps = local.audio_kbps
        if options.audio_bitrate is None:
            kbps = min(kbps, GROUP_AUDIO_KBPS)
        return cls(options, local.video, local.audio, local.sink, kbps)

    # --- pairs ------------------------------------------------------------------------------

    def session(self, ice: IceSettings, on_state: StateListener) -> Session:
        """A fresh Session for one pair: its senders share the group's tracks and encoders, its
        received audio goes into the mix, its received video into its own `video_sink`."""
        pair = _Pair(MixInput(self.mix, self.speaker))

        def video_encoder(codecs: list[RTCRtpCodecParameters]) -> Encoder | None:
            shared = self._video_encoder(codecs[0])
            if shared is None:
                return None
            branch = VideoEncoderBranch(shared, pair)
            pair.video.append(branch)
            return branch

        def speech_encoder() -> SpeechBranch:
            branch = SpeechBranch(self.speech, pair)
            pair.speech.append(branch)
            return branch

        options = self.options
        session = Session(
            ice=ice,
            video=None,
            audio=None,
            audio_sink=pair.sink,
            on_state=on_state,
            codec=options.codec,
            low_latency=options.low_latency,
            receive_video=options.receive_video,
            audio_bitrate=self.audio_kbps,
            shared=SharedSending(
                video_track=self.video.branch() if self.video is not None else None,
                audio_track=self.audio.branch() if self.audio is not None else None,
                video_encoder=video_encoder,
                speech_encoder=speech_encoder,
                playout=self.playout,
            ),
        )
        self._pairs[session] = pair
        return session

    def _video_encoder(self, codec: RTCRtpCodecParameters) -> SharedEncoder | None:
        mime = codec.mimeType.lower()
        shared = self._video_encoders.get(mime)
        if shared is None:
            inner = realtime_encoder(codec, GROUP_START_KBPS)
            if not isinstance(inner, AdaptiveVideoEncoder):
                return None  # a codec tcall does not adapt: aiortc's own encoder, per pair
            shared = self._video_encoders[mime] = SharedEncoder(inner)
        return shared

    def release(self, session: Session) -> None:
        """A pair is gone: its estimate and loss no longer count, its member leaves the mix; the
        caller then closes the session (which leaves the shared sources running)."""
        pair = self._pairs.pop(session, None)
        if pair is None:
            return
        for branch in (*pair.video, *pair.speech):
            branch.release()
        for shared in (*self._video_encoders.values(), self.speech):
            shared.forget(pair)
        self.mix.remove(pair.sink.playout)

    @property
    def sessions(self) -> list[Session]:
        return list(self._pairs)

    # --- controls and figures ---------------------------------------------------------------

    @property
    def camera_on(self) -> bool:
        return self.video is not None and self.video.enabled

    @camera_on.setter
    def camera_on(self, on: bool) -> None:
        if self.video is not None:
            self.video.enabled = on

    @property
    def muted(self) -> bool:
        return self.audio is not None and self.audio.muted

    @muted.setter
    def muted(self, muted: bool) -> None:
        if self.audio is not None:
            self.audio.muted = muted

    def self_view(self) -> np.ndarray | None:
        """The newest frame captured (RGB), whatever the pairs are doing."""
        return self.video.latest if self.video is not None else None

    def speaking_levels(self) -> dict[Session, float]:
        """The recent level of what each pair's member says, in dBFS (engine/media/levels.py
        SILENCE_DB, -100, when nothing is heard): the loudest is the one speaking."""
        return {session: pair.sink.level_db for session, pair in self._pairs.items()}

    @property
    def frames_captured(self) -> int:
        return self.video.frames_captured if self.video is not None else 0

    @property
    def video_encodes(self) -> int:
        """Frames handed to a video encoder, over every codec in use (one per captured frame)."""
        return sum(shared.encodes for shared in self._video_encoders.values())

    @property
    def audio_encodes(self) -> int:
        return self.speech.encodes

    @property
    def video_target_kbps(self) -> int:
        """The bitrate the shared video encoder aims at now (0 before it starts)."""
        encoders = self._video_encoders.values()
        return min((shared.target_bitrate // 1000 for shared in encoders), default=0)

    def sent_figures(self, session: Session) -> dict[str, int]:
        """What a pair's video sender passed on: frames, keyframes, and frames held back while it
        waited for a keyframe (it had missed one its receiver needed)."""
        pair = self._pairs.get(session)
        branches = pair.video if pair is not None else []
        return {
            "video_frames_sent": sum(b.frames for b in branches),
            "video_keyframes_sent": sum(b.keyframes for b in branches),
            "video_frames_held": sum(b.held for b in branches),
        }

    async def close(self) -> None:
        """Stop the sources and the speaker (the caller closes the pairs' sessions)."""
        self.playout.stop()
        for fanout in (self.video, self.audio):
            if fanout is not None:
                await fanout.stop()
        await self.speaker.stop()
