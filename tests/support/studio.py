"""A PulseAudio studio for two talkers: every mouth and every ear on one recording, on one sample clock.

One 3-channel null sink, `rec`, is the studio's tape; its monitor is recorded. Each role is a channel:

    aux0  alice's mouth   what alice's microphone hears: her speech, noise, the echo of her speaker
    aux1  bob's ear       what bob's speaker plays
    aux2  bob's mouth     what bob's microphone hears

Alice's speaker is a null sink of its own, `alice_speaker`, off the tape: a loopback from the tape's
monitor back into the tape itself floods PulseAudio's null sink ("q overrun") until it dies.

A remap sink writes into each channel (`to_<role>`) and a remap source reads each channel back
(`from_<role>`); a tcall or aiortc process is pointed at its microphone and speaker with
PULSE_SOURCE and PULSE_SINK (libpulse reads them), so no device name inside tcall is assumed.
Since the mouth and the far ear are two channels of one recording, the lag between them is the
mouth-to-ear delay, as a file source could never show (nothing outside sees when it starts).

`echo()` adds a PulseAudio loopback from alice's speaker back into her mouth, delayed and attenuated:
the far end's voice leaking from her speaker into her microphone.
"""

from __future__ import annotations

import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from tests.support.services import pulseaudio
from tests.support.speech import RATE, write_wav

ROLES = ("alice_mouth", "bob_ear", "bob_mouth")
SOURCES = {"alice": "from_alice_mouth", "bob": "from_bob_mouth"}
SINKS = {"alice": "alice_speaker", "bob": "to_bob_ear"}


class Studio:
    def __init__(self, env: dict[str, str], folder: Path) -> None:
        self.base_env = env
        self.folder = folder

    def pactl(self, *args: str) -> str:
        result = subprocess.run(
            ["pactl", *args], env=self.base_env, capture_output=True, text=True, timeout=30
        )
        if result.returncode != 0:
            raise RuntimeError(f"pactl {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout.strip()

    def build(self) -> None:
        channels = ",".join(f"aux{i}" for i in range(len(ROLES)))
        self.pactl(
            "load-module",
            "module-null-sink",
            "sink_name=rec",
            f"channels={len(ROLES)}",
            f"channel_map={channels}",
            f"rate={RATE}",
        )
        for index, role in enumerate(ROLES):
            mono = ["channels=1", "channel_map=mono", f"master_channel_map=aux{index}", "remix=no"]
            self.pactl(
                "load-module", "module-remap-sink", f"sink_name=to_{role}", "master=rec", *mono
            )
            self.pactl(
                "load-module",
                "module-remap-source",
                f"source_name=from_{role}",
                "master=rec.monitor",
                *mono,
            )
        self.pactl(
            "load-module",
            "module-null-sink",
            "sink_name=alice_speaker",
            "channels=1",
            f"rate={RATE}",
        )
        # Both mouths in one stereo sink: a scene's two talkers start on the same sample.
        self.pactl(
            "load-module",
            "module-remap-sink",
            "sink_name=mouths",
            "master=rec",
            "channels=2",
            "channel_map=front-left,front-right",
            "master_channel_map=aux0,aux2",
            "remix=no",
        )

    def env(self, talker: str) -> dict[str, str]:
        """The environment for `talker`'s process: their mouth as its microphone, their ear as
        its speaker."""
        return {**self.base_env, "PULSE_SOURCE": SOURCES[talker], "PULSE_SINK": SINKS[talker]}

    @contextmanager
    def awake(self) -> Iterator[None]:
        """Keeps the studio's sink running in 20 ms steps while the block runs. An idle null sink
        sleeps for up to 2 s at a time, so a microphone opened on its monitor got its first samples
        about 2 s after it opened (a call's first words were lost, and its jitter buffer settled
        during the speech), where a real microphone starts within its latency."""
        process = subprocess.Popen(
            ["parec", "--device=rec.monitor", "--latency-msec=20", "--raw", "/dev/null"],
            env=self.base_env,
        )
        try:
            yield
        finally:
            process.terminate()
            process.wait(10)

    @contextmanager
    def recording(self) -> Iterator[Tape]:
        """Records every role while the block runs; the tape's `samples` are there after it."""
        raw = Path(tempfile.mkstemp(suffix=".raw", dir=self.folder)[1])
        process = subprocess.Popen(
            [
                "parec",
                "--device=rec.monitor",
                "--format=s16le",
                f"--rate={RATE}",
                f"--channels={len(ROLES)}",
                "--channel-map=" + ",".join(f"aux{i}" for i in range(len(ROLES))),
                "--latency-msec=20",
                "--raw",
                str(raw),
            ],
            env=self.base_env,
        )
        tape = Tape()
        try:
            yield tape
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            data = np.fromfile(raw, dtype="<i2")
            raw.unlink()
            tape.samples = (
                data[: len(data) // len(ROLES) * len(ROLES)].reshape(-1, len(ROLES)) / 32768.0
            )

    def play(self, alice: np.ndarray, bob: np.ndarray) -> None:
        """Speak a scene: `alice` into alice's mouth and `bob` into bob's, together, until done."""
        length = max(len(alice), len(bob))
        tracks = np.zeros((length, 2))
        tracks[: len(alice), 0] = alice
        tracks[: len(bob), 1] = bob
        path = write_wav(Path(tempfile.mkstemp(suffix=".wav", dir=self.folder)[1]), tracks)
        try:
            subprocess.run(
                ["paplay", "--device=mouths", "--channel-map=front-left,front-right", str(path)],
                env=self.base_env,
                check=True,
                timeout=len(tracks) / RATE + 30,
            )
        finally:
            path.unlink()

    @contextmanager
    def echo(self, delay_ms: int = 60, gain_db: float = -6.0) -> Iterator[None]:
        """Alice's speaker leaks into her microphone `delay_ms` later, `gain_db` quieter."""
        module = self.pactl(
            "load-module",
            "module-loopback",
            "source=alice_speaker.monitor",
            "sink=to_alice_mouth",
            f"latency_msec={delay_ms}",
            "source_dont_move=true",
            "sink_dont_move=true",
        )
        try:
            index = self._sink_input_of(module)
            # As a linear factor: this pactl refuses a negative dB value ("-6dB").
            self.pactl("set-sink-input-volume", index, f"{10 ** (gain_db / 20):.4f}")
            yield
        finally:
            self.pactl("unload-module", module)

    def _sink_input_of(self, module: str) -> str:
        """The sink input that `module` owns. Only the long listing names the owner module (the
        short one's third column is the client: until this was read from the long one, the echo's
        -6 dB was never set, and the echo came back at full level)."""
        index = None
        for line in self.pactl("list", "sink-inputs").splitlines():
            line = line.strip()
            if line.startswith("Sink Input #"):
                index = line.removeprefix("Sink Input #")
            elif line == f"Owner Module: {module}" and index is not None:
                return index
        raise RuntimeError(f"no sink input of module {module}")


class Tape:
    """What a recording holds once it ended: one column per role, float samples at RATE."""

    samples: np.ndarray = np.zeros((0, len(ROLES)))

    def __getitem__(self, role: str) -> np.ndarray:
        return np.asarray(self.samples[:, ROLES.index(role)])


@contextmanager
def studio(folder: Path) -> Iterator[Studio]:
    """A PulseAudio daemon of its own under `folder` (tests/support/services.py) with the studio's
    sinks and sources."""
    folder.mkdir(parents=True, exist_ok=True)
    # The socket path is short enough for a unix socket only in a short folder.
    with pulseaudio(Path(tempfile.mkdtemp(prefix="studio-", dir=folder)), realtime=True) as env:
        room = Studio(env, folder)
        room.build()
        with room.awake():
            time.sleep(0.1)
            yield room
