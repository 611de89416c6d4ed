"""Offline, one leg: speech through tcall's Opus sender, a lossy network, and tcall's receive path
(adaptive jitter buffer, FEC, concealment), scored with PESQ-WB (ITU-T P.862.2) and STOI.

No sockets and no real time: packets get arrival times from a simulated network (random or bursty
loss, jitter), the jitter buffer is driven tick by tick on that clock, and the decoded audio is
compared with what was spoken. The expected loss the sender plans FEC for follows simulated RTCP
reports (one a second), as in a call. Beside tcall's path it scores aiortc's (96 kbps stereo Opus,
its fixed 16-packet buffer with 4 held back, no FEC, no concealment: gaps close up) on the same
packets' fates, and tcall's encoder behind a perfect receiver (every packet decoded on time).

    .venv/bin/python bench/opus_loss.py [--runs 3] [--seconds 0]

Needs the test extra (pesq, pystoi) and alsa-utils' voice prompts (/usr/share/sounds/alsa).
"""

from __future__ import annotations

import argparse
import glob
import statistics
from collections.abc import Iterator
from dataclasses import dataclass

import av
import numpy as np
from aiortc.codecs.opus import OpusDecoder as AiortcOpusDecoder
from aiortc.codecs.opus import OpusEncoder as AiortcOpusEncoder
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtp import RtpPacket
from pesq import pesq
from pystoi import stoi
from scipy.signal import correlate, resample_poly

from tcall.engine.media.audio_jitter import AudioJitterBuffer, Playout, Step
from tcall.engine.media.opus import FRAME, SAMPLE_RATE, OpusDecoder, has_fec, packet_samples
from tcall.engine.media.opus_sender import SpeechEncoder

PACKET_S = FRAME / SAMPLE_RATE
LEAD_IN = 2.0  # s of silence sent before the speech, as a call connects before anyone speaks
QUIET_RMS = 180  # about -45 dBov, as the RTP audio level the receiver reads


def reference_speech() -> np.ndarray:
    """The eight alsa-utils voice prompts with 0.3 s between them: 48 kHz mono int16 (13.8 s)."""
    parts: list[np.ndarray] = []
    for path in sorted(glob.glob("/usr/share/sounds/alsa/*.wav")):
        if "Noise" in path:
            continue
        resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        with av.open(path) as container:
            for frame in container.decode(audio=0):
                parts += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
        parts.append(np.zeros(int(0.3 * SAMPLE_RATE), dtype=np.int16))
    if not parts:
        raise SystemExit("no speech: apt-get install alsa-utils")
    speech = np.concatenate(parts)
    return speech[: len(speech) // FRAME * FRAME]


@dataclass(frozen=True)
class Network:
    name: str
    loss: float = 0.0
    burst: float = 1.0  # mean length of a loss burst, in packets (Gilbert model)
    jitter_ms: float = 2.0  # standard deviation of the one-way delay around its mean


def fates(network: Network, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Which packets are lost, and when each one arrives (seconds after it was sent)."""
    rng = np.random.default_rng(seed)
    lost = np.zeros(count, dtype=bool)
    if network.loss:
        leave_bad = 1 / network.burst
        enter_bad = network.loss * leave_bad / (1 - network.loss)
        bad = False
        for i in range(count):
            bad = rng.random() >= leave_bad if bad else rng.random() < enter_bad
            lost[i] = bad
    delay = 0.010 + np.abs(rng.normal(0, network.jitter_ms / 1000, count))
    return lost, delay


def tcall_packets(speech: np.ndarray, lost: np.ndarray) -> list[bytes]:
    """What tcall sends, its expected loss following one simulated receiver report a second."""
    encoder = SpeechEncoder()
    packets: list[bytes] = []
    per_report = round(1 / PACKET_S)
    for index in range(len(speech) // FRAME):
        if index and index % per_report == 0:
            encoder.report_loss(float(lost[index - per_report : index].mean()))
        frame = av.AudioFrame.from_ndarray(
            speech[index * FRAME : (index + 1) * FRAME].reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate = SAMPLE_RATE
        packets.append(encoder.encode(frame)[0][0])
    return packets


def tcall_receive(
    packets: list[bytes], speech: np.ndarray, lost: np.ndarray, delay: np.ndarray
) -> tuple[np.ndarray, float]:
    """tcall's receive path, driven on the simulated clock: arrivals and ticks in time order.
    Also the buffer's mean depth (s) over the ticks after the lead-in's first second."""
    buffer = AudioJitterBuffer()
    decoder = OpusDecoder()
    out: list[np.ndarray] = []
    depths: list[float] = []
    arrivals = sorted(
        (index * PACKET_S + delay[index], index) for index in range(len(packets)) if not lost[index]
    )
    events: Iterator[tuple[float, int]] = iter(arrivals)
    pending = next(events, None)
    end = len(packets) * PACKET_S + 0.5
    while True:
        due = buffer.next_due()
        if pending is not None and (due is None or pending[0] <= due):
            at, index = pending
            chunk = speech[index * FRAME : (index + 1) * FRAME].astype(np.float64)
            quiet = float(np.sqrt(np.mean(chunk**2))) < QUIET_RMS
            payload = packets[index]
            buffer.insert(
                index & 0xFFFF,
                (index * FRAME) & 0xFFFFFFFF,
                payload,
                at,
                samples=packet_samples(payload) or FRAME,
                fec=has_fec(payload),
                quiet=quiet,
            )
            pending = next(events, None)
            continue
        if due is None or due > end:
            break
        if due > 1.0:
            depths.append(buffer.delay())
        for step in buffer.pop(due):
            pcm = _decode(decoder, step)
            if step.audible:
                out.append(pcm[step.skip :])
    heard = np.concatenate(out) if out else np.zeros(0, dtype=np.int16)
    return heard, float(np.mean(depths)) if depths else 0.0


def _decode(decoder: OpusDecoder, step: Playout) -> np.ndarray:
    if step.step is Step.PLAY and step.payload:
        return decoder.decode(step.payload)
    if step.step is Step.RECOVER and step.payload:
        return decoder.recover(step.payload, step.samples)
    return decoder.conceal(step.samples)


def perfect_receive(packets: list[bytes], lost: np.ndarray) -> np.ndarray:
    """Every packet decoded in order, a lost one from the next packet's FEC when it came, else
    concealed: what the buffer would do with unlimited delay."""
    decoder = OpusDecoder()
    out = []
    for index, payload in enumerate(packets):
        if not lost[index]:
            out.append(decoder.decode(payload))
        elif index + 1 < len(packets) and not lost[index + 1]:
            out.append(decoder.recover(packets[index + 1], FRAME))
        else:
            out.append(decoder.conceal(FRAME))
    return np.concatenate(out)


def aiortc_path(speech: np.ndarray, lost: np.ndarray, delay: np.ndarray) -> np.ndarray:
    """aiortc as it is: its encoder, and its buffer fed in arrival order, decoding what it releases."""
    encoder, decoder = AiortcOpusEncoder(), AiortcOpusDecoder()
    buffer = JitterBuffer(capacity=16, prefetch=4)
    packets = []
    for index in range(len(speech) // FRAME):
        frame = av.AudioFrame.from_ndarray(
            speech[index * FRAME : (index + 1) * FRAME].reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate, frame.pts = SAMPLE_RATE, index * FRAME
        payloads, _ = encoder.encode(frame)
        packets.append(payloads[0] if payloads else b"")
    out = []
    order = sorted(range(len(packets)), key=lambda i: i * PACKET_S + delay[i])
    for index in order:
        if lost[index] or not packets[index]:
            continue
        packet = RtpPacket(payload_type=96, sequence_number=index & 0xFFFF, timestamp=index * FRAME)
        packet._data = packets[index]  # type: ignore[attr-defined]
        _, encoded = buffer.add(packet)
        if encoded is not None:
            for frame in decoder.decode(encoded):
                stereo = frame.to_ndarray().reshape(-1, 2)
                out.append(stereo.mean(axis=1).astype(np.int16))
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int16)


def scores(speech: np.ndarray, heard: np.ndarray) -> tuple[float, float]:
    """PESQ-WB and STOI of `heard` against `speech`, after aligning it by cross-correlation."""
    if len(heard) < SAMPLE_RATE:
        return 1.0, 0.0
    ref16 = resample_poly(speech.astype(np.float64), 1, 3)
    deg16 = resample_poly(heard.astype(np.float64), 1, 3)
    lag = int(np.argmax(correlate(deg16, ref16[: 16000 * 3], mode="valid", method="fft")))
    deg16 = deg16[lag : lag + len(ref16)]
    deg16 = np.pad(deg16, (0, len(ref16) - len(deg16)))
    return float(pesq(16000, ref16, deg16, "wb")), float(stoi(ref16, deg16, 16000, extended=False))


NETWORKS = (
    Network("no loss"),
    Network("5% random", 0.05),
    Network("10% random", 0.10),
    Network("10% bursts (mean 3)", 0.10, burst=3.0),
    Network("5% random, 20 ms jitter", 0.05, jitter_ms=20.0),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    speech = reference_speech()
    sent = np.concatenate([np.zeros(int(LEAD_IN * SAMPLE_RATE), dtype=np.int16), speech])
    count = len(sent) // FRAME
    print(
        f"{'network':28} {'tcall PESQ/STOI':>18} {'buffer ms':>9} {'perfect receiver':>18}"
        f" {'aiortc':>14}"
    )
    for network in NETWORKS:
        rows: dict[str, list[tuple[float, float]]] = {"tcall": [], "perfect": [], "aiortc": []}
        depths = []
        for seed in range(args.runs):
            lost, delay = fates(network, count, seed)
            packets = tcall_packets(sent, lost)
            heard, depth = tcall_receive(packets, sent, lost, delay)
            rows["tcall"].append(scores(speech, heard))
            depths.append(depth * 1000)
            rows["perfect"].append(scores(speech, perfect_receive(packets, lost)))
            rows["aiortc"].append(scores(speech, aiortc_path(sent, lost, delay)))
        cells = [_cell(rows[name]) for name in ("tcall", "perfect", "aiortc")]
        depth_cell = f"{statistics.mean(depths):.1f}"
        print(f"{network.name:28} {cells[0]:>18} {depth_cell:>9} {cells[1]:>18} {cells[2]:>14}")


def _cell(runs: list[tuple[float, float]]) -> str:
    """Median PESQ (range) / median STOI."""
    pesqs = [p for p, _ in runs]
    stoi_median = statistics.median(s for _, s in runs)
    return f"{statistics.median(pesqs):.2f} ({min(pesqs):.2f}-{max(pesqs):.2f})/{stoi_median:.2f}"


if __name__ == "__main__":
    main()
