"""config.toml: defaults, checked values, unknown keys kept, broken files, do-not-disturb windows."""

from __future__ import annotations

import stat
from datetime import datetime, time
from pathlib import Path

import pytest

from tcall.engine.errors import ConfigError, UsageError
from tcall.engine.settings import SCHEMA, Settings, TurnServer, dnd_active

ISSUE_5_KEYS = {
    "video_calling",
    "auto_answer",
    "who_can_call",
    "silence_unknown",
    "do_not_disturb",
    "answer_with_camera",
    "ask_before_video",
    "relay_only",
    "stun_servers",
    "turn_servers",
    "history_retention_days",
    "presence",
}
OURS = {"relay_url", "render", "camera", "microphone", "speaker", "auto_answer_from"}
ISSUE_13_KEYS = {"ring_bell", "ring_notify"}
ISSUE_15_KEYS = {
    "echo_cancellation",
    "noise_suppression",
    "auto_gain",
    "audio_bitrate",
    "speaker_latency",
}


def test_schema_has_every_key() -> None:
    assert set(SCHEMA) == ISSUE_5_KEYS | OURS | ISSUE_13_KEYS | ISSUE_15_KEYS


def test_private_defaults() -> None:
    s = Settings.load()
    assert s.video_calling and s.silence_unknown and s.ask_before_video
    assert s.auto_answer == "off" and s.who_can_call == "contacts" and s.presence == "contacts"
    assert not s.answer_with_camera and not s.relay_only
    assert s.stun_servers == [] and s.turn_servers == [] and s.auto_answer_from == []
    assert s.history_retention_days == 30 and s.do_not_disturb == "off"
    assert (s.relay_url, s.render) == ("", "auto")
    assert (s.camera, s.microphone, s.speaker) == ("camera", "mic", "default")
    assert not s.path.exists()  # reading never writes


def test_set_saves_atomically_only_what_changed(tcall_home: Path) -> None:
    s = Settings.load()
    s.set("who_can_call", "everyone")
    s.set("history_retention_days", "0")
    s.set("auto_answer_from", "alice, bob")
    s.set("stun_servers", "stun:127.0.0.1:3478")
    s.set("turn_servers", "turn://us%40r:p%2Cw@127.0.0.1:3478?transport=tcp,turns://u:p@[::1]")
    path = tcall_home / "config.toml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = Settings.load()
    assert again.who_can_call == "everyone" and again.history_retention_days == 0
    assert again.auto_answer_from == ["alice", "bob"]
    assert again.stun_servers == ["stun:127.0.0.1:3478"]
    assert again.turn_servers == [
        TurnServer("turn:127.0.0.1:3478?transport=tcp", "us@r", "p,w"),
        TurnServer("turns:[::1]", "u", "p"),
    ]
    assert "video_calling" not in path.read_text()
    s.set("auto_answer_from", "")
    assert Settings.load().auto_answer_from == []


@pytest.mark.parametrize(
    ("key", "value", "allowed"),
    [
        ("who_can_call", "friends", "everyone | contacts | nobody"),
        ("video_calling", "maybe", "on | off"),
        ("history_retention_days", "-1", "0-36500"),
        ("history_retention_days", "ten", "0-36500"),
        ("do_not_disturb", "25:00-07:00", "HH:MM-HH:MM"),
        ("do_not_disturb", "07:00-07:00", "HH:MM-HH:MM"),
        ("relay_url", "http://x:1", "ws://"),
        ("render", "svg", "halfblock"),
        ("stun_servers", "stun.example.org", "stun:HOST"),
        ("turn_servers", "turn://127.0.0.1:3478", "USER:PASS"),
        ("auto_answer_from", "a b", "contact names"),
        ("camera", " ", "device spec"),
    ],
)
def test_bad_values_name_the_key_and_the_allowed_values(key: str, value: str, allowed: str) -> None:
    with pytest.raises(UsageError) as info:
        Settings.load().set(key, value)
    assert key in str(info.value) and allowed in str(info.value)


def test_unknown_setting_on_the_command_line() -> None:
    with pytest.raises(UsageError, match="unknown setting: colour"):
        Settings.load().set("colour", "blue")


def test_unknown_keys_are_reported_and_kept(tcall_home: Path) -> None:
    path = tcall_home / "config.toml"
    path.write_text('future_key = "x"\nvideo_calling = false\n[plugin]\nlevel = 3\n')
    s = Settings.load()
    assert not s.video_calling  # TOML booleans are accepted for on/off keys
    assert len(s.warnings) == 2 and "future_key" in s.warnings[0] and "plugin" in s.warnings[1]
    s.set("relay_url", "ws://127.0.0.1:7711")
    again = Settings.load()
    assert again.relay_url == "ws://127.0.0.1:7711" and not again.video_calling
    assert 'future_key = "x"' in path.read_text() and "level = 3" in path.read_text()


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("who_can_call = \n", "not valid TOML"),
        ("who_can_call = 'friends'\n", "who_can_call.*everyone | contacts | nobody"),
        ("history_retention_days = '30'\n", "history_retention_days"),
        ("stun_servers = 'stun:h'\n", "stun_servers"),
    ],
)
def test_a_broken_file_is_a_one_line_config_error(tcall_home: Path, text: str, match: str) -> None:
    (tcall_home / "config.toml").write_text(text)
    with pytest.raises(ConfigError, match=match) as info:
        Settings.load()
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("value", "now", "active"),
    [
        ("off", time(23, 0), False),
        ("on", time(12, 0), True),
        ("22:00-07:00", time(21, 59), False),
        ("22:00-07:00", time(22, 0), True),
        ("22:00-07:00", time(3, 0), True),
        ("22:00-07:00", time(7, 0), False),
        ("09:00-17:30", time(17, 29, 59), True),
        ("09:00-17:30", time(17, 30), False),
        ("09:00-17:30", time(8, 0), False),
    ],
)
def test_dnd_windows(value: str, now: time, active: bool) -> None:
    assert dnd_active(value, now) is active


def test_dnd_from_settings(tcall_home: Path) -> None:
    s = Settings.load()
    s.set("do_not_disturb", "22:00-07:00")
    assert s.dnd_active(datetime(2024, 5, 1, 23, 30))
    assert not Settings.load().dnd_active(datetime(2024, 5, 1, 12, 0))
