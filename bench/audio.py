"""Audio quality and delay of real calls, tcall beside bare aiortc, scored with PESQ-WB and STOI.

Each call is alice calling bob, audio only, between two real processes in network namespaces with a
router between them (tests/support/lossy_link.py): `tcall call` and `tcall listen --auto-answer`
through a `tcall serve` on the router, or two bare aiortc peers (tests/support/bare_audio.py) with
sounddevice in and out. Speech (alsa-utils' voice prompts and espeak-ng, about 24 s) is spoken into
alice's microphone and what bob's speaker plays is recorded, both from one PulseAudio sink on one
sample clock (tests/support/studio.py), aligned by cross-correlation and scored at 16 kHz
(tests/support/speech.py). Loss is dropped by the router on forwarded UDP, both ways: at random by
`iptables -m statistic`, in bursts by a Gilbert-Elliott loss line. The echo scene routes alice's
speaker back into her microphone (60 ms later, 6 dB down) while bob talks; the noise scene mixes
noise into her microphone at 5 dB SNR. The noise suppressor's added delay and the processing's CPU
are also measured on the processing itself, offline (`processing_itself`: this checkout's only).

    sudo .venv/bin/python bench/audio.py [--runs 3] [--tcall-commit REV] [--json FILE]

`--tcall-commit` runs the tcall of another commit (its engine/ and tui/, from `git archive`) with
this checkout's tests/support: the "before" column of a change. Needs the test extra (pesq,
pystoi), alsa-utils, espeak-ng, pulseaudio and iptables (bash .ci/setup --test). Settings a tcall
does not have are reported as "n/a (setting missing)".
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.support: the same studio, link and scoring the tests use

from tests.support import audio_scenes, speech  # noqa: E402
from tests.support.audio_call import Loss, Scene, Stage, Take, cpu_hogs, stage  # noqa: E402

PROCESSING = ("echo_cancellation", "noise_suppression", "auto_gain")
AUDIO_STATS = ("audio", "jitter", "conceal", "fec", "packets_lost")  # stats keys worth showing
Figures = dict[str, Any]


def losses(link_stage: Stage) -> dict[str, Loss | None]:
    link = link_stage.link
    return {
        "no loss": None,
        "5% random": lambda: link.random_loss(0.05),
        "10% random": lambda: link.random_loss(0.10),
        "10% bursts": lambda: link.burst_loss(0.10, 3.0),
    }


def audio_stats(take: Take) -> dict[str, Any]:
    """bob's last stats (and summary) keys about audio: whatever this tcall reports."""
    return {
        key: value
        for key, value in take.stats("bob").items()
        if any(word in key for word in AUDIO_STATS)
    }


def one_run(room: Stage, reference: Any, folder: Path, say: Callable[[str], None]) -> Figures:
    """Every figure once: returns {condition: {figure: value}}."""
    known = room.settings()
    on = {key: "on" for key in PROCESSING if key in known}
    figures: Figures = {
        "settings": sorted(k for k in PROCESSING + ("audio_bitrate",) if k in known)
    }
    one_leg = Scene(reference)

    def leg(name: str, take: Take) -> None:
        score = audio_scenes.one_leg_score(take, reference)
        figures[name] = {
            "pesq": score.pesq,
            "stoi": score.stoi,
            "delay_ms": score.delay_ms,
            "cpu_percent": take.cpu_percent,
            "stats": audio_stats(take),
        }
        if take.loss_counts:
            counts = take.loss_counts
            figures[name]["lost_pct"] = 100 * counts["lost"] / max(1, sum(counts.values()))
        say(f"{name}: {figures[name]}")

    # "tcall-off": echo cancellation, noise suppression and gain off, to tell what the network
    # path does from what the microphone's processing does.
    off = {key: "off" for key in on}
    for condition, loss in losses(room).items():
        leg(f"tcall {condition}", room.tcall(one_leg, on, loss))
        if off:
            leg(f"tcall-off {condition}", room.tcall(one_leg, off, loss))
        leg(f"bare {condition}", room.bare(one_leg, loss))
    # The speaker_latency setting's steady speaker, under the hogs and what it costs without them.
    steady = {**on, "speaker_latency": "steady"} if "speaker_latency" in known else None
    if steady:
        leg("tcall steady no loss", room.tcall(one_leg, steady))
    with cpu_hogs(2):
        leg("tcall two hogs", room.tcall(one_leg, on))
        if off:
            leg("tcall-off two hogs", room.tcall(one_leg, off))
        if steady:
            leg("tcall steady two hogs", room.tcall(one_leg, steady))
        leg("bare two hogs", room.bare(one_leg))

    scene, layout = audio_scenes.echo_scene(folder)
    # With auto_gain off too: what the echo canceller removed before a gain stage raised it again.
    echo_settings = {"tcall echo": on}
    if "auto_gain" in on:
        echo_settings["tcall echo gain off"] = {**on, "auto_gain": "off"}
    for name, settings in echo_settings.items():
        with room.room.echo():
            echo = audio_scenes.echo_figures(room.tcall(scene, settings), layout)
        figures[name] = {
            "erle_db": echo.erle_db,
            "near_alone_pesq": echo.near_alone.pesq,
            "near_double_talk_pesq": echo.near_double_talk.pesq,
        }
        say(f"{name}: {figures[name]}")

    # The same double talk with no echo path at all (headphones): what the echo canceller does to
    # a near talker when there is nothing to cancel.
    scene, layout = audio_scenes.headphones_scene(folder)
    heard = audio_scenes.echo_figures(room.tcall(scene, on), layout)
    figures["tcall headphones"] = {
        "near_alone_pesq": heard.near_alone.pesq,
        "near_double_talk_pesq": heard.near_double_talk.pesq,
    }
    say(f"tcall headphones: {figures['tcall headphones']}")

    noisy = audio_scenes.noisy_scene(reference, snr_db=5.0)
    for state in ("on", "off"):
        if state == "off" and "noise_suppression" not in known:
            continue
        take = room.tcall(noisy, {**on, **({"noise_suppression": "off"} if state == "off" else {})})
        score = audio_scenes.one_leg_score(take, reference)
        figures[f"tcall noise ns {state}"] = {"pesq": score.pesq, "delay_ms": score.delay_ms}
        say(f"tcall noise ns {state}: {figures[f'tcall noise ns {state}']}")
    return figures


def processing_itself(reference: Any) -> Figures:
    """The processing itself, offline (this checkout's): how much later speech comes out of it with
    the noise suppressor than without (cross-correlation), and the CPU of the microphone's whole
    path as a call runs it (the far-end reference resampled and its echo tracked, AEC3, the
    suppressor, AGC2) on double talk. Two calls' difference measures these only roughly: with the
    same settings one call's mouth-to-ear delay varies by tens of ms, its CPU by points."""
    from tcall.engine.media.processing import AudioProcessing, FarEndReference, MicProcessor
    from tcall.engine.media.sound import BLOCK
    from tests.support.echo_scene import echo_scene

    block = BLOCK  # the microphone's 20 ms, as a call hands it to the processing
    lead = np.zeros(speech.RATE)  # a second before the speech, as a call has before anyone speaks
    tail = np.zeros(speech.RATE // 5)  # room for the delayed speech's end, so locate can find it
    samples = np.round(np.concatenate([lead, reference, tail]) * 32768).clip(-32768, 32767)
    samples = samples.astype(np.int16)
    lag = {}
    for suppress in (True, False):
        chain = MicProcessor(AudioProcessing(True, suppress, True))
        out = [
            chain.process(samples[at : at + block], np.zeros(block, dtype=np.int16))
            for at in range(0, len(samples) - block + 1, block)
        ]
        lag[suppress] = speech.locate(reference, np.concatenate(out) / 32768)

    talk = echo_scene(seconds=10, near_from=2.0, noise_db=-50)
    runs = []
    for _ in range(3):
        chain, far_end = MicProcessor(AudioProcessing(True, True, True)), FarEndReference()
        began = time.process_time()
        for at in range(0, len(talk.mic) - block + 1, block):
            far_end.push(talk.far[at : at + block])
            near = talk.mic[at : at + block]
            far = far_end.take(block)
            far_end.heard(near, far)
            chain.process(near, far)
        runs.append((time.process_time() - began) / (len(talk.mic) / speech.RATE) * 100)
    return {
        "ns_added_ms": (lag[True] - lag[False]) * 1000 / speech.RATE,
        "cpu_percent": sorted(runs)[1],
    }


# --- the table ----------------------------------------------------------------------------------


def values(runs: list[Figures], condition: str, figure: str) -> list[float]:
    found = [run.get(condition, {}).get(figure) for run in runs]
    return [v for v in found if isinstance(v, int | float)]


def spread(numbers: list[float], digits: int = 2) -> str:
    if not numbers:
        return "n/a"
    middle = statistics.median(numbers)
    if len(numbers) == 1:
        return f"{middle:.{digits}f}"
    return f"{middle:.{digits}f} ({min(numbers):.{digits}f}-{max(numbers):.{digits}f})"


def verdict(numbers: list[float], goal: float, at_least: bool) -> str:
    if not numbers:
        return "n/a"
    middle = statistics.median(numbers)
    return "met" if (middle >= goal if at_least else middle <= goal) else "**not met**"


def table(runs: list[Figures], itself: Figures | None = None) -> str:
    known = set(runs[0]["settings"]) if runs else set()
    rows = [
        "| figure | tcall | tcall, processing off | bare aiortc | goal | tcall |",
        "|---|---|---|---|---|---|",
    ]

    def row(
        label: str, condition: str, figure: str, goal: float | None, at_least: bool, digits: int = 2
    ) -> None:
        ours = values(runs, f"tcall {condition}", figure)
        bare = values(runs, f"bare {condition}", figure)
        off = values(runs, f"tcall-off {condition}", figure)
        sign = ">=" if at_least else "<="
        goal_text = f"{sign} {goal:g}" if goal is not None else ""
        met = verdict(ours, goal, at_least) if goal is not None else ""
        rows.append(
            f"| {label} | {spread(ours, digits)} | {spread(off, digits) if off else ''} "
            f"| {spread(bare, digits) if bare else ''} "
            f"| {goal_text} | {met} |"
        )

    row("PESQ-WB, no loss", "no loss", "pesq", 4.4, True)
    row("STOI, no loss", "no loss", "stoi", None, True, 3)
    row("PESQ-WB, two CPU hogs", "two hogs", "pesq", 4.3, True)
    row("PESQ-WB, two CPU hogs, speaker_latency steady", "steady two hogs", "pesq", 4.3, True)
    row("PESQ-WB, 5% random loss", "5% random", "pesq", 3.8, True)
    row("STOI, 5% random loss", "5% random", "stoi", None, True, 3)
    row("PESQ-WB, 10% random loss", "10% random", "pesq", 3.3, True)
    measured = values(runs, "tcall 10% bursts", "lost_pct") + values(
        runs, "bare 10% bursts", "lost_pct"
    )
    lost_text = f"; {spread(measured, 1)}% lost" if measured else ""
    row(f"PESQ-WB, 10% loss in bursts (mean 3{lost_text})", "10% bursts", "pesq", 3.0, True)
    row("mouth-to-ear one way, no loss (ms)", "no loss", "delay_ms", 80, False, 0)
    row("mouth-to-ear one way, two CPU hogs (ms)", "two hogs", "delay_ms", None, False, 0)
    row(
        "mouth-to-ear one way, no loss, speaker_latency steady (ms)",
        "steady no loss",
        "delay_ms",
        None,
        False,
        0,
    )
    row("mouth-to-ear one way, 5% random loss (ms)", "5% random", "delay_ms", None, False, 0)
    row("mouth-to-ear one way, 10% bursts (ms)", "10% bursts", "delay_ms", None, False, 0)

    missing = "n/a (setting missing)"
    erle = values(runs, "tcall echo", "erle_db")
    aec = "echo_cancellation" in known
    note = "" if aec else f" ({missing}: echo_cancellation)"
    rows.append(
        f"| echo removed after 2 s (ERLE, dB){note} | {spread(erle, 1)} | | | >= 25 | {verdict(erle, 25, True)} |"
    )
    erle_gain_off = values(runs, "tcall echo gain off", "erle_db")
    if erle_gain_off:
        rows.append(
            f"| echo removed after 2 s, auto_gain off (dB) | {spread(erle_gain_off, 1)} | | | | |"
        )
    for label, condition in (
        (f"near talker's PESQ lost in double talk{note}", "tcall echo"),
        ("the same with headphones (no echo at all)", "tcall headphones"),
    ):
        alone = values(runs, condition, "near_alone_pesq")
        double = values(runs, condition, "near_double_talk_pesq")
        lost = [a - d for a, d in zip(alone, double, strict=False)]
        rows.append(
            f"| {label} | {spread(lost)} (alone {spread(alone)}, double talk {spread(double)}) "
            f"| | | <= 0.3 | {verdict(lost, 0.3, False)} |"
        )
    on, off = values(runs, "tcall noise ns on", "pesq"), values(runs, "tcall noise ns off", "pesq")
    if "noise_suppression" in known:
        gain = [a - b for a, b in zip(on, off, strict=False)]
        added = [
            a - b
            for a, b in zip(
                values(runs, "tcall noise ns on", "delay_ms"),
                values(runs, "tcall noise ns off", "delay_ms"),
                strict=False,
            )
        ]
        rows.append(
            f"| noise suppression: PESQ gain at 5 dB SNR | {spread(gain)} (on {spread(on)}, off {spread(off)}) | | | >= +0.5 | {verdict(gain, 0.5, True)} |"
        )
        if itself:
            ns_ms = [itself["ns_added_ms"]]
            rows.append(
                f"| noise suppression: added delay, the suppressor itself (offline, ms) | {spread(ns_ms, 1)} | | | <= 10 | {verdict(ns_ms, 10, False)} |"
            )
        rows.append(
            f"| noise suppression: added delay, the two calls' difference (ms) | {spread(added, 0)} | | | | |"
        )
    else:
        rows.append(
            f"| noise suppression: PESQ gain at 5 dB SNR | {missing} (PESQ of the noisy call {spread(on)}) | | | >= +0.5 | n/a |"
        )
        rows.append(f"| noise suppression: added delay (ms) | {missing} | | | <= 10 | n/a |")
    if known & set(PROCESSING):
        cpu = [
            a - b
            for a, b in zip(
                values(runs, "tcall no loss", "cpu_percent"),
                values(runs, "tcall-off no loss", "cpu_percent"),
                strict=False,
            )
        ]
        if itself:
            chain = [itself["cpu_percent"]]
            rows.append(
                f"| CPU of the audio processing, its own (offline, % of a core) | {spread(chain, 1)} | | | <= 3 | {verdict(chain, 3, False)} |"
            )
        rows.append(
            f"| CPU of the audio processing (% of a core: caller, on minus off) | {spread(cpu, 1)} | | | | |"
        )
    else:
        rows.append(f"| CPU of the audio processing (% of a core) | {missing} | | | <= 3 | n/a |")
    cpu_ours, cpu_off, cpu_bare = (
        values(runs, f"{who} no loss", "cpu_percent") for who in ("tcall", "tcall-off", "bare")
    )
    rows.append(
        f"| caller's whole process while talking (% of a core) | {spread(cpu_ours, 1)} | {spread(cpu_off, 1)} | {spread(cpu_bare, 1)} | | |"
    )
    return "\n".join(rows)


def tcall_of(commit: str, folder: Path) -> dict[str, str]:
    """The environment that makes `tcall` run `commit`'s engine/ and tui/."""
    source = folder / "source"
    package = folder / "package" / "tcall"
    source.mkdir(parents=True)
    package.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "archive", commit, "engine", "tui"], cwd=ROOT, capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(source)], input=archive.stdout, check=True)
    for part in ("engine", "tui"):
        (package / part).symlink_to(source / part)
    return {"PYTHONPATH": str(folder / "package")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tcall-commit", help="measure the tcall of this commit instead")
    parser.add_argument("--json", type=Path, help="also write every run's figures here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tcall-audio-bench-") as temp:
        folder = Path(temp)
        env = tcall_of(args.tcall_commit, folder / "tcall") if args.tcall_commit else {}
        reference = speech.reference_speech(folder / "speech")
        runs: list[Figures] = []
        with stage(folder, env) as room:
            for index in range(args.runs):
                load = Path("/proc/loadavg").read_text().split()[:3]
                print(
                    f"run {index + 1}/{args.runs}, load average {' '.join(load)}",
                    file=sys.stderr,
                    flush=True,
                )
                started = time.monotonic()
                runs.append(
                    one_run(
                        room,
                        reference,
                        folder / "speech",
                        lambda s: print(s, file=sys.stderr, flush=True),
                    )
                )
                runs[-1]["load"] = load
                print(
                    f"run {index + 1} took {time.monotonic() - started:.0f} s",
                    file=sys.stderr,
                    flush=True,
                )
                if args.json:
                    args.json.write_text(json.dumps(runs, indent=1))
        # Offline, so only of this checkout: another commit's rows are its calls' alone.
        itself = None if args.tcall_commit else processing_itself(reference)
        if args.json and itself:
            args.json.write_text(json.dumps([*runs, {"processing itself": itself}], indent=1))
        what = f"tcall at {args.tcall_commit}" if args.tcall_commit else "tcall (this checkout)"
        print(f"{what}, {args.runs} runs: median (min-max)\n")
        print(table(runs, itself))


if __name__ == "__main__":
    main()
