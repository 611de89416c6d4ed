"""User settings: `config.toml` in the config dir, with a schema, typed accessors and atomic writes.

Every key has a default, so a missing file means "all defaults" and the file holds only what the
user changed. A bad value fails with an error naming the key and its allowed values; keys the
schema does not know are reported in `warnings` and written back untouched.

`answer_with_camera` defaults to off: answering a call should never switch a camera on by itself;
the user turns video on in the call when they mean to.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import tomli_w

from tcall.engine import paths
from tcall.engine.address import check_relay_url
from tcall.engine.atomic import read_file, write_atomic
from tcall.engine.errors import ConfigError, UsageError
from tcall.engine.locking import locked

CONFIG_FILE = "config.toml"
MAX_BYTES = 1 << 20
_ON_OFF = ("on", "off")
_WINDOW = re.compile(r"([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)")
_HOST_PORT = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?")
_NAME = re.compile(r"[^\W_][\w.-]{0,63}")
# Opus from its lowest useful speech rate to well past transparent mono music.
AUDIO_KBPS = (6, 128)


@dataclass(frozen=True)
class Setting:
    """One key of config.toml: its default, what it allows, and how to read it."""

    key: str
    default: Any
    allowed: str
    check: Callable[[Any], Any]  # a TOML value -> the stored value; ValueError if not allowed
    from_text: Callable[[str], Any]  # a command-line string -> a TOML value


@dataclass(frozen=True)
class TurnServer:
    url: str  # "turn:HOST:PORT?transport=udp", as RTCIceServer wants it
    username: str
    credential: str


def _choice(key: str, choices: tuple[str, ...], default: str) -> Setting:
    def check(value: Any) -> str:
        if choices == _ON_OFF and isinstance(value, bool):
            return "on" if value else "off"
        if value not in choices:
            raise ValueError
        return str(value)

    return Setting(key, default, " | ".join(choices), check, str.strip)


def _device(key: str, default: str) -> Setting:
    def check(value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise ValueError
        return value

    return Setting(key, default, "a device spec string (see `tcall devices`)", check, str.strip)


def _relay(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError
    return check_relay_url(value) if value else ""


def _days(value: Any) -> int:
    if type(value) is not int or not 0 <= value <= 36500:
        raise ValueError
    return value


def _kbps(value: Any) -> int:
    if type(value) is not int or not AUDIO_KBPS[0] <= value <= AUDIO_KBPS[1]:
        raise ValueError
    return value


def _dnd(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if value in _ON_OFF:
        return str(value)
    if not isinstance(value, str):
        raise ValueError
    match = _WINDOW.fullmatch(value)
    if not match or match.group(1, 2) == match.group(3, 4):
        raise ValueError
    return value


def _stun(url: str) -> str:
    scheme, _, rest = url.partition(":")
    if scheme not in ("stun", "stuns") or not _HOST_PORT.fullmatch(rest):
        raise ValueError
    return url


def parse_turn(url: str) -> TurnServer:
    parts = urlsplit(url)
    if parts.scheme not in ("turn", "turns") or not parts.hostname or not parts.password:
        raise ValueError
    transport = parts.query.removeprefix("transport=")
    if parts.path or parts.fragment or transport not in ("", "udp", "tcp"):
        raise ValueError
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    port = f":{parts.port}" if parts.port else ""  # .port raises ValueError when out of range
    query = f"?transport={transport}" if transport else ""
    return TurnServer(
        f"{parts.scheme}:{host}{port}{query}",
        unquote(parts.username or ""),
        unquote(parts.password),
    )


def _turn(url: str) -> str:
    parse_turn(url)
    return url


def _name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise ValueError
    return name


def _list_of(item: Callable[[str], str]) -> Callable[[Any], list[str]]:
    def check(value: Any) -> list[str]:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError
        return [item(v) for v in value]

    return check


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _int_text(text: str) -> Any:
    try:
        return int(text.strip())
    except ValueError:
        return text  # check() then names the key and the allowed values


SCHEMA: dict[str, Setting] = {
    s.key: s
    for s in [
        _choice("video_calling", _ON_OFF, "on"),
        _choice("auto_answer", ("off", "contacts"), "off"),
        Setting("auto_answer_from", [], "comma-separated contact names", _list_of(_name), _split),
        _choice("who_can_call", ("everyone", "contacts", "nobody"), "contacts"),
        _choice("silence_unknown", _ON_OFF, "on"),
        Setting("do_not_disturb", "off", "off | on | HH:MM-HH:MM (daily)", _dnd, str.strip),
        _choice("answer_with_camera", _ON_OFF, "off"),
        _choice("ask_before_video", _ON_OFF, "on"),
        _choice("relay_only", _ON_OFF, "off"),
        Setting(
            "stun_servers", [], "comma-separated stun:HOST[:PORT] URLs", _list_of(_stun), _split
        ),
        Setting(
            "turn_servers",
            [],
            "comma-separated turn://USER:PASS@HOST[:PORT][?transport=udp|tcp] URLs",
            _list_of(_turn),
            _split,
        ),
        Setting("history_retention_days", 30, "a whole number of days, 0-36500", _days, _int_text),
        _choice("presence", ("contacts", "nobody"), "contacts"),
        _choice("ring_bell", _ON_OFF, "on"),
        _choice("ring_notify", _ON_OFF, "on"),
        Setting(
            "relay_url",
            "",
            "empty, or ws://HOST:PORT or wss://HOST[:PORT][/PATH]",
            _relay,
            str.strip,
        ),
        _choice("render", ("auto", "halfblock", "256", "ascii", "sixel", "kitty"), "auto"),
        _device("camera", "camera"),
        _device("microphone", "mic"),
        _device("speaker", "default"),
        _choice("echo_cancellation", _ON_OFF, "on"),
        _choice("noise_suppression", _ON_OFF, "on"),
        _choice("auto_gain", _ON_OFF, "on"),
        _choice("speaker_latency", ("low", "steady"), "low"),
        Setting(
            "audio_bitrate",
            64,  # opus_sender.DEFAULT_BITRATE_KBPS, not imported: settings stays light
            f"Opus kbps, {AUDIO_KBPS[0]}-{AUDIO_KBPS[1]} (64: fullband speech with room for FEC)",
            _kbps,
            _int_text,
        ),
    ]
}


def config_path() -> Path:
    return paths.config_dir() / CONFIG_FILE


def _checked(key: str, value: Any) -> Any:
    setting = SCHEMA[key]
    try:
        return setting.check(value)
    except ValueError:
        raise ValueError(f"bad value {value!r} for {key} (allowed: {setting.allowed})") from None


def _read_settings(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The checked values and the unknown keys of config.toml (both empty if there is none)."""
    raw = read_file(path, MAX_BYTES, "settings file")
    if raw is None:
        return {}, {}
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    values: dict[str, Any] = {}
    for key in SCHEMA.keys() & data.keys():
        try:
            values[key] = _checked(key, data[key])
        except ValueError as exc:
            raise ConfigError(f"{path}: {exc}") from None
    return values, {k: v for k, v in data.items() if k not in SCHEMA}


class Settings:
    """The settings of one tcall home. `set` saves at once; reads use the typed properties."""

    def __init__(self, path: Path, values: dict[str, Any], unknown: dict[str, Any]) -> None:
        self.path = path
        self._values = values  # only the keys the user set, already checked
        self._unknown = unknown

    @classmethod
    def load(cls, path: Path | None = None) -> Settings:
        path = path if path is not None else config_path()
        return cls(path, *_read_settings(path))

    @property
    def warnings(self) -> list[str]:
        return [f"unknown setting {key!r} in {self.path} (kept as is)" for key in self._unknown]

    def get(self, key: str) -> Any:
        if key not in SCHEMA:
            raise UsageError(f"unknown setting: {key} (known: {', '.join(SCHEMA)})")
        return self._values.get(key, SCHEMA[key].default)

    def as_dict(self) -> dict[str, Any]:
        return {key: self.get(key) for key in SCHEMA}

    def set(self, key: str, text: str) -> Any:
        """Set `key` from command-line text and save; UsageError names the allowed values.

        Under the folder's lock the file is read again first, so a setting another process
        changed meanwhile is kept rather than overwritten with this object's older copy.
        """
        self.get(key)
        try:
            value = _checked(key, SCHEMA[key].from_text(text))
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        with locked(self.path.parent):
            self._values, self._unknown = _read_settings(self.path)
            self._values[key] = value
            self.save()
        return value

    def save(self) -> None:
        data = {k: self._values[k] for k in SCHEMA if k in self._values} | self._unknown
        with locked(self.path.parent):
            write_atomic(self.path, tomli_w.dumps(data).encode("utf-8"), mode=0o600)

    def _on(self, key: str) -> bool:
        return bool(self.get(key) == "on")

    @property
    def video_calling(self) -> bool:
        return self._on("video_calling")

    @property
    def auto_answer(self) -> str:
        return str(self.get("auto_answer"))

    @property
    def auto_answer_from(self) -> list[str]:
        return list(self.get("auto_answer_from"))

    @property
    def who_can_call(self) -> str:
        return str(self.get("who_can_call"))

    @property
    def silence_unknown(self) -> bool:
        return self._on("silence_unknown")

    @property
    def do_not_disturb(self) -> str:
        return str(self.get("do_not_disturb"))

    @property
    def answer_with_camera(self) -> bool:
        return self._on("answer_with_camera")

    @property
    def ask_before_video(self) -> bool:
        return self._on("ask_before_video")

    @property
    def relay_only(self) -> bool:
        return self._on("relay_only")

    @property
    def stun_servers(self) -> list[str]:
        return list(self.get("stun_servers"))

    @property
    def turn_servers(self) -> list[TurnServer]:
        return [parse_turn(url) for url in self.get("turn_servers")]

    @property
    def history_retention_days(self) -> int:
        return int(self.get("history_retention_days"))

    @property
    def presence(self) -> str:
        return str(self.get("presence"))

    @property
    def relay_url(self) -> str:
        return str(self.get("relay_url"))

    @property
    def render(self) -> str:
        return str(self.get("render"))

    @property
    def camera(self) -> str:
        return str(self.get("camera"))

    @property
    def microphone(self) -> str:
        return str(self.get("microphone"))

    @property
    def speaker(self) -> str:
        return str(self.get("speaker"))

    @property
    def echo_cancellation(self) -> bool:
        return self._on("echo_cancellation")

    @property
    def noise_suppression(self) -> bool:
        return self._on("noise_suppression")

    @property
    def auto_gain(self) -> bool:
        return self._on("auto_gain")

    @property
    def speaker_steady(self) -> bool:
        """The speaker starts at its steadiest latency (see engine/media/sinks.py SpeakerSink)."""
        return self.get("speaker_latency") == "steady"

    @property
    def audio_bitrate(self) -> int:
        return int(self.get("audio_bitrate"))

    def dnd_active(self, now: datetime) -> bool:
        """Whether do-not-disturb holds at local time `now`; a window may span midnight."""
        return dnd_active(self.do_not_disturb, now.time())


def dnd_active(value: str, now: time) -> bool:
    if value in _ON_OFF:
        return value == "on"
    start_text, end_text = value.split("-")
    start, end = time.fromisoformat(start_text), time.fromisoformat(end_text)
    now = now.replace(second=0, microsecond=0, tzinfo=None)
    if start < end:
        return start <= now < end
    return now >= start or now < end
