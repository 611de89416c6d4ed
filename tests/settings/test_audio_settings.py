"""The audio settings (echo_cancellation, noise_suppression, auto_gain, audio_bitrate,
speaker_latency): their defaults, their checks, and how a call's options take them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tcall.engine.call import CallOptions, audio_settings, open_session, speaker_steady
from tcall.engine.errors import ConfigError, ExitCode
from tcall.engine.media.opus_sender import DEFAULT_BITRATE_KBPS
from tcall.engine.media.processing import AudioProcessing, ProcessedAudioSource
from tcall.engine.settings import Settings
from tcall.tui.cli import main
from tests.support.cli import error_line


def test_every_stage_is_on_and_speech_gets_64_kbps_by_default() -> None:
    settings = Settings.load()
    assert (settings.echo_cancellation, settings.noise_suppression, settings.auto_gain) == (
        True,
        True,
        True,
    )
    assert settings.audio_bitrate == 64 == DEFAULT_BITRATE_KBPS
    assert audio_settings(CallOptions()) == (AudioProcessing(True, True, True), 64)


@pytest.mark.parametrize("key", ["echo_cancellation", "noise_suppression", "auto_gain"])
def test_each_stage_turns_off_for_the_next_call(key: str) -> None:
    Settings.load().set(key, "off")
    processing, _ = audio_settings(CallOptions())
    assert getattr(processing, key) is False
    others = {"echo_cancellation", "noise_suppression", "auto_gain"} - {key}
    assert all(getattr(processing, other) for other in others)


def test_a_calls_own_options_beat_the_settings() -> None:
    Settings.load().set("echo_cancellation", "off")
    Settings.load().set("audio_bitrate", "64")
    options = CallOptions(echo_cancellation=True, noise_suppression=False, audio_bitrate=24)
    assert audio_settings(options) == (AudioProcessing(True, False, True), 24)


def test_options_that_name_everything_never_read_the_file(tcall_home: Path) -> None:
    (tcall_home / "config.toml").write_text("audio_bitrate = 'loud'\n")
    complete = CallOptions(
        echo_cancellation=False, noise_suppression=False, auto_gain=False, audio_bitrate=16
    )
    assert audio_settings(complete) == (AudioProcessing(False, False, False), 16)
    with pytest.raises(ConfigError, match="audio_bitrate"):
        audio_settings(CallOptions())


@pytest.mark.parametrize("value", ["5", "0", "129", "32.5", "fast", ""])
def test_a_bitrate_out_of_range_is_one_line_naming_the_range(
    capsys: pytest.CaptureFixture[str], value: str
) -> None:
    err = error_line(capsys, ["settings", "set", "audio_bitrate", value], ExitCode.USAGE)
    assert "audio_bitrate" in err and "6-128" in err
    assert Settings.load().audio_bitrate == 64


@pytest.mark.parametrize("value", ["6", "128"])
def test_the_bitrate_bounds_are_allowed(value: str) -> None:
    assert main(["settings", "set", "audio_bitrate", value]) == ExitCode.OK
    assert Settings.load().audio_bitrate == int(value)


def test_a_stage_takes_only_on_or_off(capsys: pytest.CaptureFixture[str]) -> None:
    err = error_line(capsys, ["settings", "set", "noise_suppression", "max"], ExitCode.USAGE)
    assert "noise_suppression" in err and "on | off" in err


async def test_the_bitrate_and_the_stages_reach_the_calls_media() -> None:
    Settings.load().set("audio_bitrate", "48")
    Settings.load().set("noise_suppression", "off")
    options = CallOptions(video="none", audio="sine", process_generated_audio=True)
    session = open_session(options, lambda _notice: None, lambda _state: None)
    try:
        assert session.audio_bitrate == 48
        assert session.audio_track is not None
        source = session.audio_track.source
        assert isinstance(source, ProcessedAudioSource) and source.processor is not None
        assert source.processor.processing == AudioProcessing(True, False, True)
    finally:
        await session.close()


def test_the_speaker_starts_low_unless_the_setting_or_the_call_asks_for_steady(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert speaker_steady(CallOptions()) is False
    assert main(["settings", "set", "speaker_latency", "steady"]) == ExitCode.OK
    assert speaker_steady(CallOptions()) is True
    assert speaker_steady(CallOptions(speaker_latency="low")) is False
    err = error_line(capsys, ["settings", "set", "speaker_latency", "high"], ExitCode.USAGE)
    assert "speaker_latency" in err and "low | steady" in err
    assert Settings.load().speaker_steady is True
