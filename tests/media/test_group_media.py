"""A group call's shared local media, in-process (engine/media/fanout.py, shared_encoder.py, group.py,
playout.py's Mix, sinks.py's MixInput): one capture and one encode per frame for every pair, a
keyframe for all when one pair asks, the lowest estimate, a pair that missed a frame waiting for a
keyframe, the speaker mixing every member in bounded buffers, and a pair that leaves leaving the
rest running."""

from __future__ import annotations

import asyncio
import dataclasses
import fractions
import math

import numpy as np
import pytest
from aiortc.codecs.base import Encoder
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from av import AudioFrame, VideoFrame
from av.frame import Frame

from tcall.engine.call import CallOptions
from tcall.engine.compat.encoder import AdaptiveVideoEncoder, LiveVp8Encoder, RealtimeH264Encoder
from tcall.engine.ice import IceSettings
from tcall.engine.media.adapt import MIN_KBPS, VIDEO_SHARE
from tcall.engine.media.audio import AudioSource, sine_blocks
from tcall.engine.media.fanout import AudioFanout, Broadcast, VideoBranch, VideoFanout
from tcall.engine.media.group import GROUP_AUDIO_KBPS, GroupMedia
from tcall.engine.media.levels import SILENCE_DB
from tcall.engine.media.opus_sender import SharedSpeech, SpeechBranch
from tcall.engine.media.playout import Mix, Playout
from tcall.engine.media.shared_encoder import (
    EncoderBranch,
    SharedEncoder,
    VideoEncoderBranch,
)
from tcall.engine.media.sinks import AudioSink, MixInput
from tcall.engine.media.tracks import stamped_audio
from tcall.engine.media.video import VideoSource

VP8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)


class Camera(VideoSource):
    """Frames as fast as they are asked for, each a different grey."""

    def __init__(self, width: int = 320, height: int = 240) -> None:
        self.width, self.height, self.fps, self.name = width, height, 15.0, "test"
        self.count = 0
        self.stopped = False

    async def next_frame(self) -> np.ndarray:
        await asyncio.sleep(0)
        self.count += 1
        return np.full((self.height, self.width, 3), self.count % 256, dtype=np.uint8)

    def stop(self) -> None:
        self.stopped = True


class Microphone(AudioSource):
    def __init__(self) -> None:
        self.name = "test"
        self.blocks = sine_blocks(440.0, 0.3)
        self.stopped = False

    async def next_block(self) -> np.ndarray:
        await asyncio.sleep(0)
        return next(self.blocks)

    def stop(self) -> None:
        self.stopped = True


class Counting(Encoder):
    """Stands in for a video encoder: one payload per frame naming it, and the keyframes asked."""

    def __init__(self) -> None:
        self.frames: list[int] = []
        self.keyframes: list[int] = []
        self.target_bitrate = 500_000

    def encode(self, frame: Frame, force_keyframe: bool = False) -> tuple[list[bytes], int]:
        assert frame.pts is not None
        self.frames.append(frame.pts)
        if force_keyframe:
            self.keyframes.append(frame.pts)
        return [b"frame %d" % frame.pts], frame.pts

    def pack(self, packet: object) -> tuple[list[bytes], int]:
        raise NotImplementedError


def frame_at(pts: int) -> VideoFrame:
    frame = VideoFrame(16, 16, "yuv420p")
    frame.pts, frame.time_base = pts, fractions.Fraction(1, 90000)
    return frame


# --- the fan-out -----------------------------------------------------------------------------


async def test_a_broadcast_makes_each_item_once_and_every_reader_gets_every_one() -> None:
    made = 0

    async def produce() -> int:
        nonlocal made
        await asyncio.sleep(0)
        made += 1
        return made

    items = Broadcast(produce, history=3)
    seen = [-1, -1, -1]
    got: list[list[int]] = [[], [], []]
    for _ in range(4):
        for reader in range(3):
            seen[reader], item = await items.after(seen[reader])
            got[reader].append(item)
    assert got == [[1, 2, 3, 4]] * 3
    assert made == 4


async def test_a_reader_that_fell_behind_skips_to_the_newest() -> None:
    count = iter(range(100))

    async def produce() -> int:
        return next(count)

    items = Broadcast(produce, history=3)
    ahead = -1
    for _ in range(6):
        ahead, _item = await items.after(ahead)
    assert await items.after(-1) == (5, 5)  # item 0 is gone: the newest
    assert await items.after(2) == (3, 3)  # still kept


async def test_a_cancelled_reader_does_not_cancel_the_capture_others_wait_for() -> None:
    release = asyncio.Event()

    async def produce() -> str:
        await release.wait()
        return "frame"

    items = Broadcast(produce, history=2)
    first = asyncio.ensure_future(items.after(-1))
    second = asyncio.ensure_future(items.after(-1))
    await asyncio.sleep(0)
    first.cancel()
    release.set()
    assert await second == (0, "frame")


async def test_every_branch_hands_out_the_same_frames_and_the_camera_is_one_for_all() -> None:
    camera = Camera()
    fanout = VideoFanout(camera)
    branches = [fanout.branch() for _ in range(5)]
    frames = [[await branch.recv() for _ in range(3)] for branch in branches]
    assert all(f == frames[0] for f in frames)  # the very same objects
    assert fanout.frames_captured == camera.count == 3
    assert fanout.latest is not None and int(fanout.latest[0, 0, 0]) == 3

    fanout.enabled = False  # the camera off, for every pair
    assert not any(branch.enabled for branch in branches)
    waiting = asyncio.ensure_future(branches[1].recv())
    await asyncio.sleep(0.05)
    assert not waiting.done() and camera.count == 3
    fanout.enabled = True
    assert isinstance(await waiting, VideoFrame)

    branches[0].enabled = False  # one pair's own say: the others go on
    assert not branches[0].enabled and branches[1].enabled
    stopped = asyncio.ensure_future(branches[0].recv())
    for _ in range(10):
        last = await branches[1].recv()
    assert not stopped.done()
    branches[0].enabled = True
    assert (
        await stopped is last
    )  # it skipped to the newest (its encoder branch waits for a keyframe)

    branches[2].stop()  # a pair leaves
    assert not camera.stopped
    assert isinstance(await branches[3].recv(), VideoFrame)
    await fanout.stop()
    assert camera.stopped


async def test_a_branch_made_mid_call_starts_at_the_next_frame() -> None:
    fanout = VideoFanout(Camera())
    first = fanout.branch()
    for _ in range(3):
        await first.recv()
    late = fanout.branch()
    frame = await late.recv()
    assert frame.pts == (await first.recv()).pts


async def test_audio_blocks_are_read_once_and_muted_for_all() -> None:
    microphone = Microphone()
    fanout = AudioFanout(microphone)
    branches = [fanout.branch() for _ in range(3)]
    blocks = [await branch.recv() for branch in branches]
    assert blocks[0] is blocks[1] is blocks[2]
    assert fanout.blocks_captured == 1
    branches[1].muted = True
    assert fanout.muted
    silent = await branches[0].recv()
    assert not silent.to_ndarray().any()
    assert silent.pts == blocks[0].samples
    await fanout.stop()
    assert microphone.stopped


# --- the shared encoder ----------------------------------------------------------------------


def test_each_frame_is_encoded_once_for_every_branch() -> None:
    inner = Counting()
    shared = SharedEncoder(inner)
    pairs = [object() for _ in range(5)]
    branches = [VideoEncoderBranch(shared, pair) for pair in pairs]
    for pts in range(0, 30000, 3000):
        frame = frame_at(pts)
        outputs = [branch.encode(frame) for branch in branches]
        assert all(out == ([b"frame %d" % pts], pts) for out in outputs)
    assert shared.encodes == len(inner.frames) == 10
    assert inner.keyframes == [0]  # the first, said so: the branches may start there


def test_a_keyframe_asked_by_one_pair_goes_to_all() -> None:
    inner = Counting()
    shared = SharedEncoder(inner)
    branches = [VideoEncoderBranch(shared, object()) for _ in range(3)]
    for pts in (0, 3000):
        for branch in branches:
            branch.encode(frame_at(pts))
    branches[0].encode(frame_at(6000))
    branches[1].encode(frame_at(6000), force_keyframe=True)  # asked once 6000 is encoded
    branches[2].encode(frame_at(6000))
    for branch in branches:
        branch.encode(frame_at(9000))
    assert inner.keyframes == [0, 9000]
    assert [b.keyframes for b in branches] == [2, 2, 2]


def test_a_branch_that_missed_a_frame_waits_for_a_keyframe() -> None:
    inner = Counting()
    shared = SharedEncoder(inner)
    steady, behind = VideoEncoderBranch(shared, object()), VideoEncoderBranch(shared, object())
    for pts in (0, 3000, 6000):
        steady.encode(frame_at(pts))
    assert behind.encode(frame_at(0)) != ([], 0)  # still kept: it follows on from there
    assert behind.encode(frame_at(6000)) == ([], 6000)  # skipped 3000: its receiver cannot decode
    assert behind.held == 1
    assert steady.encode(frame_at(9000))[0] and behind.encode(frame_at(9000))[0]  # the keyframe
    assert inner.keyframes == [0, 9000]
    assert behind.encode(frame_at(3000)) == ([], 3000)  # kept, but its chain has moved on
    assert behind.encode(frame_at(7500)) == ([], 0)  # older than the newest: never encoded now
    assert shared.encodes == 4


def test_a_frame_the_encoder_drops_costs_no_branch_its_chain() -> None:
    class Dropping(Counting):
        def encode(self, frame: Frame, force_keyframe: bool = False) -> tuple[list[bytes], int]:
            payloads, timestamp = super().encode(frame, force_keyframe)
            return ([] if frame.pts == 3000 else payloads), timestamp

    shared = SharedEncoder(Dropping())
    branch = VideoEncoderBranch(shared, object())
    assert [bool(branch.encode(frame_at(pts))[0]) for pts in (0, 3000, 6000)] == [1, 0, 1]
    assert branch.held == 0


def test_the_bitrate_follows_the_lowest_estimate_of_the_pairs_still_there() -> None:
    inner = Counting()
    shared = SharedEncoder(inner)
    a, b, c = (VideoEncoderBranch(shared, pair) for pair in ("a", "b", "c"))
    a.target_bitrate = 800_000
    b.target_bitrate = 300_000
    c.target_bitrate = 600_000
    assert inner.target_bitrate == 300_000
    assert a.target_bitrate == 300_000
    shared.forget("b")
    assert inner.target_bitrate == 600_000
    b.release()
    b.target_bitrate = 100_000  # a report still on its way when the pair left
    assert inner.target_bitrate == 600_000
    shared.forget("c")
    shared.forget("a")  # no pair left: the last rate stands
    assert inner.target_bitrate == 800_000


@pytest.mark.parametrize("codec", [LiveVp8Encoder, RealtimeH264Encoder])
def test_five_senders_cost_one_encode_per_frame(
    codec: type[LiveVp8Encoder | RealtimeH264Encoder],
) -> None:
    # H.264 too: PyAV's encode rebases the frame's pts, which the other senders know it by.
    adaptive = AdaptiveVideoEncoder(codec(), start_kbps=250)
    shared = SharedEncoder(adaptive)
    branches = [VideoEncoderBranch(shared, object()) for _ in range(5)]
    pixels = np.zeros((240 * 3 // 2, 320), dtype=np.uint8)
    for index in range(15):
        pixels[:240, index * 10 : index * 10 + 10] = 200
        frame = VideoFrame.from_ndarray(pixels, format="yuv420p")
        frame.pts, frame.time_base = index * 6000, fractions.Fraction(1, 90000)  # 15 fps
        payloads = {tuple(branch.encode(frame)[0]) for branch in branches}
        assert len(payloads) == 1 and payloads != {()}
        assert frame.pts == index * 6000
    assert shared.encodes == 15 and shared.keyframes == 1
    assert [branch.frames for branch in branches] == [15] * 5


def test_audio_branches_share_one_opus_encode_and_fec_follows_the_lossiest_pair() -> None:
    shared = SharedSpeech(32)
    clean, lossy = SpeechBranch(shared, "clean"), SpeechBranch(shared, "lossy")
    blocks = sine_blocks()
    for index in range(5):
        frame = stamped_audio(next(blocks), index * 960)
        assert clean.encode(frame) == lossy.encode(frame)
    assert shared.encodes == 5
    clean.report_loss(0.0)
    lossy.report_loss(0.12)
    assert clean.expected_loss_percent == lossy.expected_loss_percent == 12
    shared.forget("lossy")
    assert clean.expected_loss_percent == 0
    assert isinstance(clean, EncoderBranch) and not hasattr(clean, "target_bitrate")


# --- the speaker ------------------------------------------------------------------------------


def test_the_mix_sums_every_member_and_clips() -> None:
    mix = Mix()
    quiet, loud = mix.add(), mix.add()
    quiet.write(np.full(960, 1000, dtype=np.int16))
    loud.write(np.full(960, 30000, dtype=np.int16))
    out = np.zeros(240, dtype=np.int16)
    mix.read(out)
    assert (out == 31000).all()
    third = mix.add()
    third.write(np.full(960, 30000, dtype=np.int16))
    mix.read(out)
    assert (out == 32767).all()
    mix.remove(loud)
    mix.remove(third)
    mix.read(out)
    assert (out == 1000).all()


def test_a_member_can_never_queue_unbounded_audio() -> None:
    mix = Mix()
    member = MixInput(mix, AudioSink())
    blocks = sine_blocks()
    for index in range(100):  # two seconds, and nobody playing
        member.play(stamped_audio(next(blocks), index * 960))
    assert member.playout.buffered <= Playout.MAX_BUFFERED


async def test_each_members_level_is_what_it_says_recently() -> None:
    mix = Mix()
    talker, listener = MixInput(mix, AudioSink()), MixInput(mix, AudioSink())
    blocks = sine_blocks(440.0, 0.3)  # RMS 0.3 / sqrt(2): -13.5 dBFS
    for index in range(50):
        talker.play(stamped_audio(next(blocks), index * 960))
    assert talker.level_db == pytest.approx(20 * math.log10(0.3 / math.sqrt(2)), abs=0.5)
    assert listener.level_db == SILENCE_DB
    await talker.stop()
    assert mix.inputs == (listener.playout,)


def test_a_stereo_frame_is_mixed_down_and_other_rates_are_not_played() -> None:
    member = MixInput(Mix(), AudioSink())
    stereo = AudioFrame.from_ndarray(
        np.full((1, 1920), 1000, dtype=np.int16), format="s16", layout="stereo"
    )
    stereo.sample_rate = 48000
    member.play(stereo)
    assert member.playout.buffered == 960
    other = AudioFrame.from_ndarray(np.zeros((1, 320), dtype=np.int16), format="s16", layout="mono")
    other.sample_rate = 16000
    member.play(other)
    assert member.playout.buffered == 960


# --- the group --------------------------------------------------------------------------------


async def test_a_group_shares_its_sources_and_a_pair_that_leaves_stops_nothing() -> None:
    camera, microphone, speaker = Camera(), Microphone(), AudioSink()
    group = GroupMedia(CallOptions(camera_on=False), camera, microphone, speaker, GROUP_AUDIO_KBPS)
    sessions = [group.session(IceSettings(), lambda state: None) for _ in range(3)]
    try:
        tracks = [s.video_track for s in sessions]
        assert all(isinstance(t, VideoBranch) and t.fanout is group.video for t in tracks)
        assert not group.camera_on and not any(t.enabled for t in tracks if t)  # camera_on=False
        group.camera_on = True
        assert all(t.enabled for t in tracks if t)
        group.muted = True
        assert all(s.audio_track is not None and s.audio_track.muted for s in sessions)
        assert len(group.mix.inputs) == 3
        assert group.speaking_levels() == {s: SILENCE_DB for s in sessions}

        # Each pair's video sender gets a branch of one shared encoder, and its audio one of one
        # shared Opus encoder (as the senders' encode_with hook would ask when they start).
        branches = [group._video_encoder(VP8) for _ in sessions]
        assert branches[0] is not None and all(b is branches[0] for b in branches)
        speech = [
            s.speech._encoder_for([RTCRtpCodecParameters("audio/opus", 48000, 2, 111)])
            for s in sessions
        ]
        assert all(isinstance(b, SpeechBranch) and b.shared is group.speech for b in speech)

        frame = await tracks[0].recv()  # type: ignore[union-attr]
        assert group.frames_captured == 1
        assert group.self_view() is not None

        group.release(sessions[0])
        await sessions[0].close()
        assert len(group.mix.inputs) == 2 and sessions[0] not in group.speaking_levels()
        assert not camera.stopped and not microphone.stopped
        assert await tracks[1].recv() is frame  # type: ignore[union-attr]
        assert (await tracks[1].recv()).pts > frame.pts  # type: ignore[union-attr]
    finally:
        for session in sessions[1:]:
            group.release(session)
            await session.close()
        await group.close()
    assert camera.stopped and microphone.stopped


async def test_a_group_sends_opus_at_the_group_rate_unless_the_options_name_one() -> None:
    options = CallOptions(
        video="none",
        audio="sine",
        echo_cancellation=False,
        noise_suppression=False,
        auto_gain=False,
    )
    notices: list[str] = []
    group = GroupMedia.open(options, notices.append, None)
    named = GroupMedia.open(dataclasses.replace(options, audio_bitrate=64), notices.append, None)
    try:
        assert group.audio_kbps == GROUP_AUDIO_KBPS and named.audio_kbps == 64
        assert group.video is None and group.self_view() is None and not group.camera_on
    finally:
        await group.close()
        await named.close()


def test_a_starved_pair_holds_the_shared_video_at_the_ladders_floor_not_below() -> None:
    shared = SharedEncoder(AdaptiveVideoEncoder(LiveVp8Encoder(), start_kbps=250))
    VideoEncoderBranch(shared, "fast").target_bitrate = 1_000_000
    VideoEncoderBranch(shared, "starved").target_bitrate = 10_000
    assert shared.target_bitrate == MIN_KBPS * 1000
    shared.forget("starved")
    assert shared.target_bitrate == int(1_000_000 * VIDEO_SHARE)
