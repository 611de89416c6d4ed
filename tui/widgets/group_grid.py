"""`GroupGrid`: a group call's members as tiles of video, laid out for how many are in the call.

One tile per member present: 1, 2 side by side, 2x2 for 3-4, 3x2 for 5-6 (`grid_shape`), laid out
again whenever someone joins or leaves and whenever the terminal is resized. A tile is the
member's video with a label in its border: a verified/unverified badge and the name on top, the
member's state, mute and camera at the bottom, all in words. The loudest speaker's tile has a
heavy green border (and says "speaking", since a colour alone is not read out).

The screen that owns the grid hands it each new `GroupView` (attributes down) and calls
`pull_frames` at its frame rate: frames are pulled, never pushed, as on the 1:1 call screen. A
tile redraws only when its member published a new frame, so an idle member costs nothing.
"""

from __future__ import annotations

import math

from textual.app import ComposeResult
from textual.containers import Container
from textual.content import Content
from textual.widget import Widget

from tcall.engine.api import GroupView, MemberState, MemberView, printable
from tcall.tui.widgets.video_view import VideoView

# A 4:3 picture, and a terminal cell's pixels (every text renderer draws two pixels a cell).
PICTURE_ASPECT = 4 / 3
CELL_PIXELS = (1, 2)
STATE_WORDS = {
    MemberState.INVITED: "invited, ringing…",
    MemberState.CONNECTING: "connecting…",
    MemberState.RECONNECTING: "reconnecting…",
    MemberState.BLOCKED: "⛔ blocked: no media",
}


def grid_shape(count: int, width: int, height: int) -> tuple[int, int]:
    """(columns, rows) of a grid for `count` tiles in `width` x `height` cells.

    1, 2 side by side, 2x2 for 3-4, 3x2 for 5-6; turned on its side only when that shows each
    picture bigger (a terminal taller than wide, in pixels: a narrow split pane).
    """
    count = max(1, count)
    columns = math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    if _picture_width(rows, columns, width, height) > _picture_width(columns, rows, width, height):
        return rows, columns
    return columns, rows


def _picture_width(columns: int, rows: int, width: int, height: int) -> float:
    """How wide (in pixels) a 4:3 picture letterboxed into one tile of this grid is."""
    tile_width = width * CELL_PIXELS[0] / columns
    tile_height = height * CELL_PIXELS[1] / rows
    return min(tile_width, tile_height * PICTURE_ASPECT)


def title(member: MemberView) -> Content:
    """The tile's top label: the badge, then the name (text, never markup).

    The badge comes first so that a long name is what gets cut short in a narrow tile, never the
    badge, and so that no name can pose as a badge by ending in "✔ verified".
    """
    name = printable(member.name)
    if member.you:
        return Content.assemble("you: ", (name, "bold"))
    badge = ("✔ verified", "green") if member.verified else ("unverified", "yellow")
    return Content.assemble(badge, "  ", (name, "bold"))


def flags(member: MemberView) -> Content:
    """The tile's bottom label: state when not connected, mute, camera, speaking."""
    parts: list[tuple[str, str]] = []
    if member.state in STATE_WORDS:
        parts.append((STATE_WORDS[member.state], "yellow"))
    if member.muted:
        parts.append(("muted", "red"))
    if not member.camera:
        parts.append(("camera off", "red"))
    if member.speaking:
        parts.append(("speaking", "bold green"))
    pieces: list[str | tuple[str, str]] = []
    for part in parts:
        pieces += [" · ", part] if pieces else [part]
    return Content.assemble(*pieces)


def _watch(member: MemberView, on: bool) -> None:
    # The engine converts a member's frames for us only while someone watches them.
    if not member.you:
        member.video.watching = on


class MemberTile(Container):
    """One member: their video (ours is the self-view) framed by a labelled border."""

    DEFAULT_CSS = """
    MemberTile {
        width: 1fr;
        height: 1fr;
        border: round $foreground 30%;
        border-title-align: left;
        border-subtitle-align: left;
    }
    MemberTile.speaking {
        border: heavy $success;
        border-title-style: bold;
    }
    """

    def __init__(self, member: MemberView, mode: str) -> None:
        super().__init__()
        self.member = member
        self.video = VideoView(mode)
        # What the video shows: the remote handle's frame count, or the self-view frame itself.
        self._shown: object = None

    def compose(self) -> ComposeResult:
        yield self.video

    def on_mount(self) -> None:
        self._label()
        _watch(self.member, True)

    def on_unmount(self) -> None:
        _watch(self.member, False)

    def show_member(self, member: MemberView) -> None:
        """The member as the engine's newest view has them; redraws the label only on a change."""
        before, self.member = self.member, member
        if member.video is not before.video:
            _watch(before, False)
            _watch(member, True)
            self._shown = None
        if member != before:  # MemberView's equality leaves the video handle out
            self._label()

    def _label(self) -> None:
        self.border_title = title(self.member)
        self.border_subtitle = flags(self.member)
        self.set_class(self.member.speaking, "speaking")

    def pull_frame(self) -> None:
        """Show the member's newest frame, if there is one we have not shown."""
        video = self.video
        if not video.size.area:  # not laid out yet: keep the frame for when it is
            return
        handle = self.member.video
        if self.member.you:
            frame = handle.self_view()
            if frame is None or frame is self._shown:
                return
            self._shown = frame
        else:
            handle.fit = video.pixel_box()  # the engine scales each frame down to the tile
            count, frame = handle.remote()
            if frame is None or count == self._shown:
                return
            self._shown = count
        video.show_frame(frame)

    async def set_mode(self, mode: str) -> None:
        """Draw with another renderer from the next frame on."""
        await self.video.remove()
        self.video = VideoView(mode)
        self._shown = None
        await self.mount(self.video)


class GroupGrid(Widget):
    """The members present in a group call, one tile each, in the order the view lists them."""

    DEFAULT_CSS = """
    GroupGrid {
        layout: grid;
        grid-size: 1 1;
        grid-rows: 1fr;
        grid-columns: 1fr;
        width: 1fr;
        height: 1fr;
    }
    """

    def __init__(self, view: GroupView, mode: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.view = view
        self.mode = mode
        self.self_view = True  # whether our own tile is in the grid
        self._tiles: dict[bytes, MemberTile] = {}

    @property
    def tiles(self) -> list[MemberTile]:
        """The tiles shown, in the grid's reading order."""
        return list(self._tiles.values())

    def on_mount(self) -> None:
        self.show_view(self.view)

    def on_resize(self) -> None:
        self._lay_out()

    def show_view(self, view: GroupView) -> None:
        """Show `view`: tiles for members who came, none for those who left, labels brought up to
        date. Tiles of members who stay keep their widgets, so their video does not blink."""
        self.view = view
        shown = [m for m in view.present() if self.self_view or not m.you]
        wanted = {m.key for m in shown}
        for key in [k for k in self._tiles if k not in wanted]:
            self._tiles.pop(key).remove()
        tiles: dict[bytes, MemberTile] = {}
        for index, member in enumerate(shown):
            tile = self._tiles.get(member.key)
            if tile is not None:
                tile.show_member(member)
            else:
                # Before the next tile already shown: the view's order is the grid's order.
                later = (self._tiles[m.key] for m in shown[index + 1 :] if m.key in self._tiles)
                tile = MemberTile(member, self.mode)
                self.mount(tile, before=next(later, None))
            tiles[member.key] = tile
        self._tiles = tiles
        self._lay_out()

    def _lay_out(self) -> None:
        width, height = self.size
        columns, rows = grid_shape(len(self._tiles), width, height)
        if (self.styles.grid_size_columns, self.styles.grid_size_rows) != (columns, rows):
            self.styles.grid_size_columns = columns
            self.styles.grid_size_rows = rows

    def pull_frames(self) -> None:
        """Show each member's newest frame; a member with nothing new costs nothing."""
        for tile in self._tiles.values():
            tile.pull_frame()

    async def set_mode(self, mode: str) -> None:
        """Draw every tile with another renderer."""
        self.mode = mode
        for tile in self._tiles.values():
            await tile.set_mode(mode)
