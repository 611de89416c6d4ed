"""Cuts and address changes (issue #16): tcall beside bare aiortc in one run, for bench/network.py.

The network is tests/support/lossy_link.py's: alice and bob on either side of a router, the relay
on the router. A cut takes the router's port towards alice down (her relay link too, as a dropped
Wi-Fi does); an address change gives alice a new address and removes the old one for good.

- tcall: `tcall call bob` and `tcall listen --auto-answer`, video (the test pattern) and audio
  (a tone), read through their JSON events: `reconnecting` and `connected` for the cut, bob's
  per-second `stats` (fps_received) for the address change, so that figure has a 1 s resolution;
- bare aiortc: two plain aiortc peers sending the same pattern and tone, their offer and answer
  over a TCP connection; each prints its connection states and the end of every gap of more than
  0.2 s between received video frames. aiortc has no ICE restart and no "disconnected" state: it
  notices a dead path only when its consent checks give up (24-36 s), and then the call closes.
- audio through a 5 s cut and through a 300 kbit/s cap: bench/audio.py's method
  (tests/support/audio_call.py: speech into alice's microphone, bob's speaker recorded, PESQ-WB).
  The cut starts 8 s into the speech; the score is of the speech before the cut and of the speech
  from 2 s after it ended. Through the cap, tcall's call carries alice's video too.

    sudo .venv/bin/python bench/network.py --only cuts   (or this file alone: its figures as JSON)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import bare_peers  # noqa: E402
from bench.bare_peers import BarePeer, exchange, say  # noqa: E402
from tests.support.link_call import call_across  # noqa: E402
from tests.support.lossy_link import Link, lossy_link  # noqa: E402
from tests.support.roaming import move_alice  # noqa: E402
from tests.support.users import Listener  # noqa: E402

CUT_S = 5.0
BARE_PORT = 7816
BARE_WAIT_S = 45.0  # longer than aiortc's consent timeout, which ends its call
GAP_S = 0.2  # a pause between received frames this long is a gap (30 fps: 33 ms apart)
SPEECH_CUT_AT_S, AFTER_CUT_S = 8.0, 2.0
CAP_KBIT = 300


# --- bare aiortc, one side, run inside a host --------------------------------------------------


async def bare_peer(role: str) -> None:
    from aiortc import RTCConfiguration, RTCPeerConnection
    from aiortc.mediastreams import MediaStreamError

    from tcall.engine.media.audio import PacedAudioSource, sine_blocks
    from tcall.engine.media.tracks import AudioSourceTrack, VideoSourceTrack
    from tcall.engine.media.video import PatternSource

    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))  # host candidates only
    pc.addTrack(VideoSourceTrack(PatternSource(640, 480, 30)))
    pc.addTrack(AudioSourceTrack(PacedAudioSource("sine", sine_blocks())))

    @pc.on("connectionstatechange")
    def on_state() -> None:
        say(state=pc.connectionState)

    @pc.on("track")
    def on_track(track: Any) -> None:
        async def read() -> None:
            last: float | None = None
            with contextlib.suppress(MediaStreamError):
                while True:
                    await track.recv()
                    now = time.monotonic()
                    if track.kind == "video" and last is not None and now - last > GAP_S:
                        say(gap_s=round(now - last, 3))
                    last = now if track.kind == "video" else last

        asyncio.ensure_future(read())

    await exchange(pc, role, BARE_PORT)
    await asyncio.sleep(3600)  # until terminated


@contextlib.contextmanager
def bare_call(link: Link) -> Iterator[tuple[BarePeer, BarePeer]]:
    with bare_peers.bare_call(link, str(Path(__file__)), settle_s=2.0) as peers:
        yield peers


# --- tcall ------------------------------------------------------------------------------------


class TimedListener:
    """A tcall process's events, each stamped with when it was read."""

    def __init__(self, listener: Listener) -> None:
        self.listener = listener
        self.stamped: list[tuple[float, dict[str, Any]]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while (event := self.listener.read_one()) is not None:
            self.stamped.append((time.monotonic(), event))

    def first(
        self, kind: str, after: float, timeout: float, **match: Any
    ) -> tuple[float, dict[str, Any]] | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for at, event in list(self.stamped):
                wanted = event["event"] == kind and all(event.get(k) == v for k, v in match.items())
                if at > after and wanted:
                    return at, event
            time.sleep(0.05)
        return None


@contextlib.contextmanager
def tcall_call(link: Link, folder: Path) -> Iterator[tuple[TimedListener, TimedListener]]:
    with call_across(link, folder) as call:
        time.sleep(2.0)  # media flowing
        yield TimedListener(call.caller), TimedListener(call.listener)
        with contextlib.suppress(BrokenPipeError, ValueError):
            call.caller.send("hangup")


# --- the figures ------------------------------------------------------------------------------


def cut_figures_tcall(folder: Path) -> dict[str, float | None]:
    """Seconds from the cut to `reconnecting`, and from the link's return to `connected`."""
    with lossy_link() as link, tcall_call(link, folder) as (alice, _bob):
        with link.cut():
            cut_at = time.monotonic()
            noticed = alice.first("state", cut_at, CUT_S + 10, state="reconnecting")
            time.sleep(max(0.0, CUT_S - (time.monotonic() - cut_at)))
        back_at = time.monotonic()
        resumed = alice.first("state", back_at, 30, state="connected")
    return {
        "noticed_s": None if noticed is None else noticed[0] - cut_at,
        "back_s": None if resumed is None else resumed[0] - back_at,
    }


def cut_figures_bare() -> dict[str, float | None]:
    """A 5 s cut: seconds from the link's return to the first video frame; then a cut that
    lasts until aiortc's connection state changes (at most BARE_WAIT_S): seconds to that."""
    with lossy_link() as link, bare_call(link) as (alice, _bob):
        with link.cut():
            time.sleep(CUT_S)
        back_at = time.monotonic()
        frame = alice.first("gap_s", after=back_at, timeout=20)
        with link.cut():
            cut_at = time.monotonic()
            changed = alice.first("state", after=cut_at, timeout=BARE_WAIT_S)
    return {
        "back_s": None if frame is None else frame["at"] - back_at,
        "noticed_s": None if changed is None else changed["at"] - cut_at,
        "noticed_state": None if changed is None else changed["state"],
    }


def move_figures_tcall(folder: Path) -> float | None:
    """Seconds from alice's address change to the end of the first stats second, wholly after
    the change, in which bob received her video (an upper bound, 1 s resolution: bob's stats
    come once a second)."""
    with lossy_link() as link, tcall_call(link, folder) as (_alice, bob):
        move_alice(link)
        moved_at = time.monotonic()
        after = moved_at + 1.0
        while (seen := bob.first("stats", after, moved_at + 20 - time.monotonic())) is not None:
            at, stats = seen
            if stats["fps_received"] > 10:
                return at - moved_at
            after = at
    return None


def move_figures_bare(wait_s: float = 15.0) -> float | None:
    with lossy_link() as link, bare_call(link) as (_alice, bob):
        move_alice(link)
        moved_at = time.monotonic()
        frame = bob.first("gap_s", after=moved_at, timeout=wait_s)
    return None if frame is None else frame["at"] - moved_at


def speech_through_cut(folder: Path) -> dict[str, float | None]:
    """PESQ-WB of the speech outside a 5 s cut, tcall and bare aiortc (bench/audio.py's studio)."""
    import numpy as np

    from tests.support import speech
    from tests.support.audio_call import LEAD_S, WITH_VIDEO, Scene, Take, stage

    reference = speech.reference_speech(folder)
    rate = speech.RATE

    @contextlib.contextmanager
    def cut_in_speech(link: Link) -> Iterator[None]:
        def cut() -> None:
            time.sleep(LEAD_S + SPEECH_CUT_AT_S)
            with link.cut():
                time.sleep(CUT_S)

        thread = threading.Thread(target=cut, daemon=True)
        thread.start()
        yield
        thread.join()

    def outside(take: Take) -> float | None:
        before = reference[: int((SPEECH_CUT_AT_S - 0.5) * rate)]
        after_from = int((SPEECH_CUT_AT_S + CUT_S + AFTER_CUT_S) * rate)
        after = reference[after_from:]
        mouth, ear = take.tape["alice_mouth"], take.tape["bob_ear"]
        spoken = speech.locate(reference, mouth)
        scores = []
        for part, offset in ((before, 0), (after, after_from)):
            window = slice(max(0, spoken + offset - rate), spoken + offset + len(part) + 3 * rate)
            got = speech.score(part, mouth[window], ear[window])
            if got.pesq is None:
                return None
            scores.append((got.pesq, len(part)))
        return float(np.average([s for s, _ in scores], weights=[n for _, n in scores]))

    def whole(take: Take) -> float | None:
        return speech.score(reference, take.tape["alice_mouth"], take.tape["bob_ear"]).pesq

    with stage(folder / "stage") as room:
        scene = Scene(reference)
        tcall_take = room.tcall(scene, None, lambda: cut_in_speech(room.link))
        bare_take = room.bare(scene, lambda: cut_in_speech(room.link))
        # Through the cap, alice's video (the pattern, 640x480) competes with her voice.
        capped = room.tcall(scene, None, lambda: room.link.cap(CAP_KBIT), media=WITH_VIDEO)
        bare_capped = room.bare(scene, lambda: room.link.cap(CAP_KBIT))
    return {
        "tcall": outside(tcall_take),
        "bare": outside(bare_take),
        "tcall cap": whole(capped),
        "bare cap": whole(bare_capped),
    }


def measure(runs: int, say: Any = print) -> dict[str, list[Any]]:
    figures: dict[str, list[Any]] = {}

    def add(key: str, value: Any) -> None:
        figures.setdefault(key, []).append(value)
        say(f"{key}: {value}")

    with tempfile.TemporaryDirectory(prefix="tcall-cuts-") as tmp:
        folder = Path(tmp)
        for run in range(runs):
            tcall_cut = cut_figures_tcall(folder / f"cut{run}")
            bare_cut = cut_figures_bare()
            add("tcall noticed", tcall_cut["noticed_s"])
            add("tcall back", tcall_cut["back_s"])
            add("bare noticed", bare_cut["noticed_s"])
            add("bare noticed state", bare_cut["noticed_state"])
            add("bare back", bare_cut["back_s"])
            add("tcall moved", move_figures_tcall(folder / f"move{run}"))
            add("bare moved", move_figures_bare())
        speech_scores = speech_through_cut(folder)
        add("tcall pesq", speech_scores["tcall"])
        add("bare pesq", speech_scores["bare"])
        add("tcall pesq cap", speech_scores["tcall cap"])
        add("bare pesq cap", speech_scores["bare cap"])
    return figures


def median_of(values: list[Any]) -> float | None:
    numbers = [v for v in values if isinstance(v, int | float)]
    return statistics.median(numbers) if numbers else None


def text(value: float | None, unit: str = " s", never: str = "never") -> str:
    return never if value is None else f"{value:.2f}{unit}"


def rows(args: argparse.Namespace) -> list[Any]:
    from bench.network import Row  # the driver's; imported here so this module also runs alone

    runs = getattr(args, "runs", 1)
    f = measure(runs)
    took = f"median of {runs}" if runs > 1 else "one run"
    bare_states = {s for s in f["bare noticed state"] if s}
    return [
        Row(
            "time to show `reconnecting` after a cut",
            "<= 2.5 s",
            text(median_of(f["tcall noticed"])),
            text(median_of(f["bare noticed"]), never=f"nothing within {BARE_WAIT_S:.0f} s"),
            f"{took}; bare aiortc: its connection state "
            + (f"became {', '.join(sorted(bare_states))}" if bare_states else "never changed"),
        ),
        Row(
            "media back after a 5 s cut ends",
            "<= 2 s",
            text(median_of(f["tcall back"])),
            text(median_of(f["bare back"])),
            f"{took}; tcall: `connected` again (the first packet back); bare: its first frame",
        ),
        Row(
            "media back after an address change",
            "<= 3 s",
            text(median_of(f["tcall moved"])),
            text(median_of(f["bare moved"]), never="never (15 s)"),
            f"{took}; tcall: the first whole stats second with bob receiving video (1 s "
            "resolution); bare aiortc cannot re-negotiate",
        ),
        Row(
            "audio PESQ-WB outside a 5 s cut",
            ">= 3.5",
            text(median_of(f["tcall pesq"]), unit=""),
            text(median_of(f["bare pesq"]), unit=""),
            "one run; speech before the cut and from 2 s after it, bench/audio.py's studio",
        ),
        Row(
            f"audio PESQ-WB through a {CAP_KBIT} kbit/s cap",
            ">= 3.5",
            text(median_of(f["tcall pesq cap"]), unit=""),
            text(median_of(f["bare pesq cap"]), unit=""),
            "one run; tcall with alice's video competing (640x480 pattern), bare aiortc "
            "audio only (tests/support/bare_audio.py has no video)",
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--bare", choices=["caller", "callee"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare:
        asyncio.run(bare_peer(args.bare))
        return
    figures = measure(args.runs)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
