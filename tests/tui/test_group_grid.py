"""Pilot tests of the group call screen (issue #17): the grid of tiles at 80x24 and 200x60 for one
to six members, their labels, the loudest speaker, re-layout on leave and join, a hostile name, the
stats box's group code, and the keys. The group is a fake handle built from the engine's real view
types, with frames published into real VideoHandles."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pyte
import pytest
from textual.app import App
from textual.geometry import Region
from textual.message import Message
from textual.pilot import Pilot
from textual.reactive import reactive
from textual.widgets import OptionList

import tcall.tui.app
from tcall.engine.api import (
    ContactView,
    GroupHandle,
    GroupView,
    MemberState,
    MemberView,
    MicLevel,
    Snapshot,
    VideoHandle,
)
from tcall.engine.events import GroupChanged, MemberJoined, MemberLeft, Stats
from tcall.tui.screens.call import Control, HangUp
from tcall.tui.screens.group_call import GroupCallScreen, Invite, InvitePicker
from tcall.tui.widgets import GroupGrid, MemberTile, grid_shape
from tests.support.decoders import app_screen

SIZES = [(80, 24), (200, 60)]
# (columns, rows) the issue asks for: 1, 2 side by side, 2x2 for 3-4, 3x2 for 5-6.
SHAPES = {1: (1, 1), 2: (2, 1), 3: (2, 2), 4: (2, 2), 5: (3, 2), 6: (3, 2)}
NAMES = ["me", "alice", "bob", "carol", "dave", "erin"]
COLOURS = [
    (200, 40, 40),
    (40, 200, 40),
    (40, 40, 200),
    (200, 200, 40),
    (40, 200, 200),
    (200, 40, 200),
]
CODE = "12345 67890 13579 24680"
M = TypeVar("M", bound=Message)


def key(i: int) -> bytes:
    return bytes([i + 1]) * 32


def picture(colour: tuple[int, int, int]) -> np.ndarray:
    return np.full((48, 64, 3), colour, dtype=np.uint8)


def member(i: int, name: str | None = None, **changes: object) -> MemberView:
    """Member i: we are 0 (our self-view is our tile's picture), alice (1) is verified."""
    video = VideoHandle()
    frame = picture(COLOURS[i])
    if i == 0:
        video.attach_self_view(lambda: frame)
    else:
        video.publish(frame)
    fields: dict[str, object] = dict(
        key=key(i),
        name=name or NAMES[i],
        fingerprint=key(i).hex()[:19],
        verified=i == 1,
        you=i == 0,
        state=MemberState.CONNECTED,
        muted=False,
        camera=True,
        speaking=False,
        video=video,
    )
    fields.update(changes)
    return MemberView(**fields)  # type: ignore[arg-type]


def group_view(members: list[MemberView], can_invite: bool = True) -> GroupView:
    return GroupView("g1", CODE, tuple(members), can_invite)


def contact(i: int, **changes: object) -> ContactView:
    fields: dict[str, object] = dict(
        name=NAMES[i],
        public_key=key(i),
        fingerprint=key(i).hex()[:19],
        relay_url="ws://127.0.0.1:9",
        verified=i == 1,
        blocked=False,
        online=True,
    )
    fields.update(changes)
    return ContactView(**fields)  # type: ignore[arg-type]


# alice and bob (blocked) are contacts in the call or not, carol and dave are contacts, erin is not.
CONTACTS = (contact(1), contact(2, blocked=True), contact(3), contact(4))


def snapshot() -> Snapshot:
    return Snapshot(b"\0" * 32, "", "", "", "online", CONTACTS, (), ())


class Host(App[None]):
    """Shows one group call screen, with the TUI's own stylesheet and relay status."""

    CSS_PATH = Path(tcall.tui.app.__file__).with_name("app.tcss")
    ENABLE_COMMAND_PALETTE = False
    relay_state: reactive[str] = reactive("online")

    def __init__(self, screen: GroupCallScreen) -> None:
        super().__init__()
        self.group_screen = screen
        self.notices: list[str] = []

    def notify(self, message: str, **how: Any) -> None:
        self.notices.append(message)

    def on_mount(self) -> None:
        self.push_screen(self.group_screen)


@pytest.fixture
def group() -> Iterator[GroupHandle]:
    loop = asyncio.new_event_loop()
    yield GroupHandle("g1", group_view([member(0)]), loop.create_future(), True, MicLevel())
    loop.close()


async def until(pilot: Pilot[None], done: Callable[[], bool], timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not done():
        assert loop.time() < deadline, "timed out waiting for the TUI"
        await pilot.pause(0.05)


def tiles(screen: GroupCallScreen) -> list[MemberTile]:
    return list(screen.query(MemberTile))


def laid_out(screen: GroupCallScreen, count: int) -> Callable[[], bool]:
    """True once `count` tiles are on screen, each with a frame drawn at its size."""

    def drawn(tile: MemberTile) -> bool:
        grid = tile.video.grid
        return grid is not None and (grid.cols, grid.rows) == tuple(tile.video.size)

    def done() -> bool:
        shown = tiles(screen)
        return len(shown) == count and all(t.region.area and drawn(t) for t in shown)

    return done


def shape(screen: GroupCallScreen) -> tuple[int, int]:
    """(columns, rows) of the tiles, from where they are on screen."""
    regions = [t.region for t in tiles(screen)]
    return len({r.x for r in regions}), len({r.y for r in regions})


def on_screen(app: App[None]) -> str:
    return "\n".join(app_screen(app).display)


def text_in(terminal: pyte.Screen, region: Region) -> str:
    x, y, w, h = region
    return "\n".join(line[x : x + w] for line in terminal.display[y : y + h])


def figures(**changes: Any) -> Stats:
    base = Stats("g1", 15, 15, "320x240", 300, 300, 0, rtt_ms=12.0, latency_ms=20.0, route="host")
    return dataclasses.replace(base, **changes)


def once(messages: list[Message], kind: type[M]) -> list[M]:
    """The messages of `kind` posted, each once (the hook sees one at every node it bubbles to)."""
    return [m for m in {id(m): m for m in messages}.values() if isinstance(m, kind)]


def tile_of(screen: GroupCallScreen, name: str) -> MemberTile:
    return next(t for t in tiles(screen) if t.member.name == name)


async def open_group(
    pilot: Pilot[None], screen: GroupCallScreen, members: list[MemberView]
) -> None:
    screen.group.view = group_view(members)
    screen.engine_event(GroupChanged("g1"))
    await until(pilot, laid_out(screen, len(members)))


# --- the layout, as a function ---------------------------------------------------------------


@pytest.mark.parametrize("count", sorted(SHAPES))
@pytest.mark.parametrize("size", [(80, 20), (160, 44), (200, 56)])
def test_grid_shape_is_the_issues_on_a_landscape_terminal(
    count: int, size: tuple[int, int]
) -> None:
    assert grid_shape(count, *size) == SHAPES[count]


def test_grid_shape_stacks_on_a_terminal_taller_than_wide() -> None:
    # 40x60 cells is 40x120 pixels: two tiles stacked are twice as wide as side by side.
    assert grid_shape(2, 40, 60) == (1, 2)
    assert grid_shape(6, 40, 60) == (2, 3)
    assert grid_shape(4, 40, 60) == (2, 2)


def test_grid_shape_always_has_a_cell_for_everyone() -> None:
    for count in range(0, 10):
        for width, height in [(1, 1), (80, 24), (30, 80), (300, 10)]:
            columns, rows = grid_shape(count, width, height)
            assert columns * rows >= max(1, count)
            assert columns * rows - max(1, count) < min(columns, rows)  # no empty row or column


# --- the grid on screen ------------------------------------------------------------------------


@pytest.mark.parametrize("count", sorted(SHAPES))
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
async def test_tiles_are_laid_out_with_names_and_badges(
    group: GroupHandle, size: tuple[int, int], count: int
) -> None:
    screen = GroupCallScreen(group, snapshot, ["halfblock"])
    app = Host(screen)
    async with app.run_test(size=size) as pilot:
        await open_group(pilot, screen, [member(i) for i in range(count)])
        assert shape(screen) == SHAPES[count]
        terminal = app_screen(app)
        grid = screen.query_one(GroupGrid).region
        regions = [t.region for t in tiles(screen)]
        for i, tile in enumerate(tiles(screen)):
            region = tile.region
            assert grid.contains_region(region)
            assert not any(region.overlaps(other) for other in regions[i + 1 :])
            # Usable at 80x24 too: a picture of at least 20x6 cells inside the border.
            assert tile.video.size.width >= 20 and tile.video.size.height >= 6
            label = text_in(terminal, region)
            assert tile.member.name in label
            if tile.member.you:
                assert "you: me" in label
            elif tile.member.verified:
                assert "✔ verified" in label
            else:
                assert "unverified" in label and "✔" not in label
        # Every member's own picture is in their tile (ours is the self-view).
        for tile in tiles(screen):
            x, y, width, height = tile.video.region
            colour = terminal.buffer[y + height // 2][x + width // 2].bg
            r, g, b = COLOURS[NAMES.index(tile.member.name)]
            assert colour == f"{r:02x}{g:02x}{b:02x}"


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
async def test_mute_camera_state_and_the_loudest_speaker_are_shown(
    group: GroupHandle, size: tuple[int, int]
) -> None:
    screen = GroupCallScreen(group, snapshot, ["halfblock"])
    app = Host(screen)
    async with app.run_test(size=size) as pilot:
        members = [
            member(0),
            member(1, speaking=True),
            member(2, muted=True),
            member(3, camera=False),
            member(4, state=MemberState.INVITED),
            member(5, state=MemberState.BLOCKED),
        ]
        await open_group(pilot, screen, members)
        terminal = app_screen(app)

        def label(name: str) -> str:
            return text_in(terminal, tile_of(screen, name).region)

        assert "muted" in label("bob") and "muted" not in label("alice")
        assert "camera off" in label("carol") and "camera off" not in label("bob")
        assert "invited, ringing" in label("dave")
        assert "blocked" in label("erin")
        assert "speaking" in label("alice") and "speaking" not in label("bob")

        def corner(name: str) -> pyte.screens.Char:
            x, y, _, _ = tile_of(screen, name).region
            return terminal.buffer[y][x]

        # The loudest speaker's border is heavy and coloured; everyone else's is the same.
        assert corner("alice").data == "┏"
        others = {(corner(n).data, corner(n).fg) for n in NAMES if n != "alice"}
        assert len(others) == 1 and corner("alice").fg not in {fg for _, fg in others}

        # The highlight moves with the view.
        members[1] = dataclasses.replace(members[1], speaking=False)
        members[2] = dataclasses.replace(members[2], speaking=True, muted=False)
        screen.group.view = group_view(members)
        screen.engine_event(GroupChanged("g1"))
        await pilot.pause()
        terminal = app_screen(app)
        assert corner("bob").data == "┏" and corner("alice").data == "╭"
        assert "muted" not in label("bob")


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
async def test_tiles_lay_out_again_when_members_leave_and_join(
    group: GroupHandle, size: tuple[int, int]
) -> None:
    screen = GroupCallScreen(group, snapshot, ["halfblock"])
    app = Host(screen)
    async with app.run_test(size=size) as pilot:
        members = [member(i) for i in range(5)]
        await open_group(pilot, screen, members)
        assert shape(screen) == (3, 2)
        kept = {t.member.name: t for t in tiles(screen)}

        members[2] = dataclasses.replace(members[2], state=MemberState.LEFT)
        screen.group.view = group_view(members)
        screen.engine_event(MemberLeft("g1", "bob", "hung up", CODE))
        await until(pilot, lambda: len(tiles(screen)) == 4 and shape(screen) == (2, 2))
        names = [t.member.name for t in tiles(screen)]
        assert names == ["me", "alice", "carol", "dave"]
        assert "bob" not in on_screen(app)
        assert app.notices[-1] == "bob left (hung up)"
        # Those who stayed keep their tiles (their video does not start over).
        assert all(t is kept[t.member.name] for t in tiles(screen))

        screen.group.view = group_view(members[:2])
        screen.engine_event(GroupChanged("g1"))
        await until(pilot, lambda: shape(screen) == (2, 1))

        # bob is asked in again: his tile takes his place in the view's order.
        members[2] = member(2, state=MemberState.INVITED)
        screen.group.view = group_view(members[:3])
        screen.engine_event(GroupChanged("g1"))
        await until(pilot, laid_out(screen, 3))
        assert [t.member.name for t in tiles(screen)] == ["me", "alice", "bob"]
        assert shape(screen) == (2, 2)
        assert "invited, ringing" in text_in(app_screen(app), tile_of(screen, "bob").region)


async def test_a_hostile_name_is_shown_as_text(group: GroupHandle) -> None:
    hostile = "[reverse]x\x1b\u202e"
    screen = GroupCallScreen(group, snapshot, ["halfblock"])
    app = Host(screen)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_group(pilot, screen, [member(0), member(2, name=hostile)])
        terminal = app_screen(app)
        region = tile_of(screen, hostile).region
        shown = "[reverse]x\\x1b\\u202e"
        assert shown in text_in(terminal, region)
        row = terminal.display[region.y]
        x = row.index(shown)
        assert not terminal.buffer[region.y][x + len("[reverse]")].reverse  # no markup applied
        screen.engine_event(MemberJoined("g1", hostile, False, CODE))
        assert app.notices[-1] == f"{shown} joined"
        await pilot.press("s")
        stats = figures()
        screen.engine_event(dataclasses.replace(stats, member=hostile))
        await pilot.pause()
        assert shown in on_screen(app)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
async def test_s_shows_the_group_code_and_each_members_figures(
    group: GroupHandle, size: tuple[int, int]
) -> None:
    screen = GroupCallScreen(group, snapshot, ["halfblock"])
    app = Host(screen)
    async with app.run_test(size=size) as pilot:
        await open_group(pilot, screen, [member(i) for i in range(3)])
        assert CODE not in on_screen(app)
        await pilot.press("s")
        stats = figures(fps_received=14.5, kbps_received=310, kbps_sent=290, packets_lost=3)
        screen.engine_event(dataclasses.replace(stats, member="alice"))
        await pilot.pause()
        text = on_screen(app)
        assert CODE in text
        alice = next(line for line in text.splitlines() if "alice " in line and "fps" in line)
        assert "14.5 fps" in alice and "310/290 kbps" in alice and "loss 3" in alice
        assert any("bob" in line and "–" in line for line in text.splitlines())
        await pilot.press("s")
        assert CODE not in on_screen(app)


async def test_i_invites_a_contact_who_is_not_blocked_or_in_the_call(group: GroupHandle) -> None:
    messages: list[Message] = []
    screen = GroupCallScreen(group, snapshot, ["halfblock"])
    app = Host(screen)
    async with app.run_test(size=(80, 24), message_hook=messages.append) as pilot:
        await open_group(pilot, screen, [member(0), member(1)])
        await pilot.press("i")
        assert isinstance(app.screen, InvitePicker)
        options = app.screen.query_one(OptionList)
        listed = [options.get_option_at_index(i).id for i in range(options.option_count)]
        assert listed == ["carol", "dave"]  # alice is in, bob is blocked
        await pilot.press("down", "enter")
        assert app.screen is screen
        await pilot.press("i", "escape")
        assert app.screen is screen
    invites = [(m.call_id, m.name) for m in once(messages, Invite)]
    assert invites == [("g1", "dave")]


async def test_i_says_why_when_nobody_can_be_invited(group: GroupHandle) -> None:
    screen = GroupCallScreen(group, snapshot, ["halfblock"])
    app = Host(screen)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_group(pilot, screen, [member(i) for i in range(6)])
        await pilot.press("i")
        assert app.screen is screen
        assert "at most 6" in app.notices[-1]
        screen.group.view = group_view([member(0)], can_invite=False)
        screen.engine_event(GroupChanged("g1"))
        await pilot.press("i")
        assert app.screen is screen
        assert "lets nobody else invite" in app.notices[-1]


async def test_the_call_keys_post_the_1_to_1_calls_messages(group: GroupHandle) -> None:
    messages: list[Message] = []
    screen = GroupCallScreen(group, snapshot, ["halfblock"])
    app = Host(screen)
    async with app.run_test(size=(80, 24), message_hook=messages.append) as pilot:
        await open_group(pilot, screen, [member(0), member(1)])
        await pilot.press("m", "c")
        topbar = str(screen.query_one("#topbar").render())
        assert "muted" in topbar and "camera off" in topbar
        await pilot.press("p")  # our own tile out of the grid, and back
        await until(pilot, lambda: [t.member.name for t in tiles(screen)] == ["alice"])
        await pilot.press("p")
        await until(pilot, laid_out(screen, 2))
        await pilot.press("h")
        await pilot.press("escape")  # once is enough
    controls = [(m.call_id, m.what, m.on) for m in once(messages, Control)]
    assert controls == [("g1", "microphone", False), ("g1", "camera", False)]
    assert [m.call_id for m in once(messages, HangUp)] == ["g1"]


async def test_a_tile_redraws_only_when_its_member_sent_a_new_frame(group: GroupHandle) -> None:
    screen = GroupCallScreen(group, snapshot, ["halfblock"])
    app = Host(screen)
    async with app.run_test(size=(160, 48)) as pilot:
        members = [member(i) for i in range(6)]
        await open_group(pilot, screen, members)
        before = {t.member.name: t.video.grid for t in tiles(screen)}
        await pilot.pause(0.2)  # six frames' time, with nothing new
        assert all(t.video.grid is before[t.member.name] for t in tiles(screen))
        members[3].video.publish(picture((255, 255, 255)))
        await until(pilot, lambda: tile_of(screen, "carol").video.grid is not before["carol"])
        assert all(
            t.video.grid is before[t.member.name] for t in tiles(screen) if t.member.name != "carol"
        )
        assert all(m.video.watching for m in members[1:])
    assert not any(m.video.watching for m in members[1:])  # nobody converts frames for us now
