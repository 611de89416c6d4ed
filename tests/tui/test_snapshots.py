"""Snapshots (pytest-textual-snapshot) of the contacts, call, incoming-call and settings screens at 80x24."""

from __future__ import annotations

from typing import Any

import numpy as np
from textual.pilot import Pilot

from tcall.engine.api import MicLevel, MicReading, VideoHandle
from tcall.engine.contacts import ContactBook
from tcall.engine.events import CallPhase, CallState, Stats
from tcall.tui.app import TcallApp
from tcall.tui.screens.call import CallScreen
from tcall.tui.screens.incoming import IncomingCallScreen
from tcall.tui.widgets import VideoView

SIZE = (80, 24)


def pattern_frame() -> np.ndarray:
    """Fixed colour bars with a white box: the same pixels on every run."""
    y, x = np.mgrid[0:240, 0:320]
    frame = np.stack([x * 255 // 319, y * 255 // 239, 255 - x * 255 // 319], axis=2)
    frame = frame.astype(np.uint8)
    frame[80:160, 120:200] = 255
    return frame


def test_contacts(snap_compare: Any, friends: ContactBook) -> None:
    assert snap_compare(TcallApp(), terminal_size=SIZE)


def test_call(snap_compare: Any) -> None:
    async def call(pilot: Pilot[None]) -> None:
        screen = CallScreen("alice", True, True, ["halfblock"], clock=lambda: 100.0)
        await pilot.app.push_screen(screen)
        screen.engine_event(CallState("c1", CallPhase.CONNECTED))
        screen.engine_event(
            Stats(
                call_id="c1",
                fps_sent=30.0,
                fps_received=29.5,
                resolution="640x480",
                kbps_sent=800.0,
                kbps_received=790.5,
                packets_lost=0,
                rtt_ms=1.2,
                latency_ms=41.0,
                route=None,
            )
        )
        await pilot.press("s", "p")
        mic = MicLevel()
        mic.reading = MicReading(level_db=-24.0, speaking=True, blocks=1)
        screen.attach(VideoHandle(), mic=mic)
        screen.pull_level()
        screen.query_one("#remote", VideoView).show_frame(pattern_frame())
        await pilot.pause()

    assert snap_compare(TcallApp(), terminal_size=SIZE, run_before=call)


def test_incoming_call(snap_compare: Any) -> None:
    async def ring(pilot: Pilot[None]) -> None:
        await pilot.app.push_screen(IncomingCallScreen("alice", False, True))

    assert snap_compare(TcallApp(), terminal_size=SIZE, run_before=ring)


def test_settings(snap_compare: Any) -> None:
    async def settings(pilot: Pilot[None]) -> None:
        await pilot.press("s")

    assert snap_compare(TcallApp(), terminal_size=SIZE, run_before=settings)
