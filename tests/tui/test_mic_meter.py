"""Pilot tests: the call screen's microphone meter follows the engine's level, and speaking while
muted shows "You are muted" until a little after you stop, or until you unmute; the Settings
screen switches each audio stage."""

from __future__ import annotations

import asyncio
from pathlib import Path

from textual.pilot import Pilot
from textual.widgets import Select

from tcall.engine.api import MicLevel, MicReading, VideoHandle
from tcall.engine.settings import Settings
from tcall.tui.app import TcallApp
from tcall.tui.screens.call import CallScreen
from tcall.tui.widgets import MicMeter
from tcall.tui.widgets.mic_meter import CELLS, HOLD_S

SIZE = (80, 24)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def meter_text(screen: CallScreen) -> str:
    return str(screen.query_one("#mic", MicMeter).render())


async def open_call(app: TcallApp, clock: Clock) -> tuple[CallScreen, MicLevel]:
    screen = CallScreen("alice", True, False, ["halfblock"], clock=clock)
    await app.push_screen(screen)
    screen.call_id = "c1"
    level = MicLevel()
    screen.attach(VideoHandle(), camera_on=False, mic=level)
    return screen, level


async def test_the_meter_follows_the_level(tcall_home: Path) -> None:
    app = TcallApp()
    async with app.run_test(size=SIZE) as pilot:
        screen, level = await open_call(app, Clock())
        level.reading = MicReading(-100.0, False, 1)
        await pilot.pause(0.25)
        assert meter_text(screen).count("█") == 0
        level.reading = MicReading(-6.0, False, 2)
        await pilot.pause(0.25)
        loud = meter_text(screen).count("█")
        level.reading = MicReading(-40.0, False, 3)
        await pilot.pause(0.25)
        quiet = meter_text(screen).count("█")
        assert CELLS > loud > quiet > 0
        assert "muted" not in meter_text(screen)


async def test_speaking_while_muted_warns_until_unmuted_or_quiet_for_a_while(
    tcall_home: Path,
) -> None:
    clock = Clock()
    app = TcallApp()
    async with app.run_test(size=SIZE) as pilot:
        screen, level = await open_call(app, clock)
        level.reading = MicReading(-20.0, True, 1)
        await pilot.pause(0.25)
        assert "You are muted" not in meter_text(screen)  # speaking, not muted: all is well
        await pilot.press("m")
        assert screen.muted
        await pilot.pause(0.25)
        assert "You are muted" in meter_text(screen)
        level.reading = MicReading(-70.0, False, 2)  # stopped speaking: the warning stays a while
        clock.now += HOLD_S / 2
        await pilot.pause(0.25)
        assert "You are muted" in meter_text(screen)
        clock.now += HOLD_S
        await pilot.pause(0.25)
        assert "You are muted" not in meter_text(screen) and "muted" in meter_text(screen)
        level.reading = MicReading(-20.0, True, 3)
        await pilot.pause(0.25)
        assert "You are muted" in meter_text(screen)
        await pilot.press("m")  # unmuted: no warning at once
        await pilot.pause(0.25)
        assert not screen.muted and "muted" not in meter_text(screen)


async def test_a_call_without_a_level_shows_an_empty_meter(tcall_home: Path) -> None:
    app = TcallApp()
    async with app.run_test(size=SIZE) as pilot:
        screen = CallScreen("alice", True, False, ["halfblock"])
        await app.push_screen(screen)
        await pilot.pause(0.25)
        assert meter_text(screen) == ""


async def test_each_audio_stage_switches_from_the_settings_screen(tcall_home: Path) -> None:
    app = TcallApp()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("s")
        for key in ("echo_cancellation", "noise_suppression", "auto_gain"):
            select = app.screen.query_one(f"#set-{key}", Select)
            assert select.value == "on"
            for value in (False, True):
                select.value = "on" if value else "off"
                await saved(pilot, key, value)


async def saved(pilot: Pilot[None], key: str, value: bool, timeout: float = 10.0) -> None:
    """Wait until the engine has saved `key` (saving goes through the engine's thread)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while getattr(Settings.load(), key) is not value:
        assert asyncio.get_running_loop().time() < deadline, f"{key} was not saved"
        await pilot.pause(0.05)
