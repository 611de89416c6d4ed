"""tcall's reads of Textual's private names, each checked before use.

VideoView needs four things Textual has no public API for:
- which widgets cover it: Textual has no public "what covers me", but the screen's compositor lists
  the visible widgets topmost first (`screen._compositor.visible_widgets`), so VideoView knows which
  of its cells it may draw and when a terminal image would cover an overlay;
- the app's driver (`app._driver`): terminal images and direct frames bypass the compositor, which
  only knows cells, and go to the terminal through the driver;
- the driver's output backlog (`driver._writer_thread._queue`): direct frames are skipped while the
  terminal has not caught up, so a slow terminal never queues seconds of video;
- the terminal's answers to cursor-position queries: Textual parses them into `CursorPosition`
  events but lets only its inline driver use them, so `on_position_reports` wraps the driver's
  `process_message` (which its input thread calls with every parsed event) to hear them first.
VideoView's RowStrip also stands in for Textual's Strip through its private `_segments` and
`_render_cache` slots: `LazyStrip` below does that, and check() covers those slots.

Each accessor raises a CompatError naming the installed Textual when its target moved; pyproject.toml
pins Textual to the minor release these were written for.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable

from rich.segment import Segment
from textual import events
from textual.app import App
from textual.driver import Driver
from textual.drivers._writer_thread import WriterThread
from textual.drivers.linux_driver import LinuxDriver
from textual.geometry import Region
from textual.message import Message
from textual.screen import Screen
from textual.strip import Strip
from textual.widget import Widget

from tcall.engine.errors import CompatError

SUPPORTED = "~=8.2.8"  # the pin in pyproject.toml


def _incompatible(problem: str) -> CompatError:
    return CompatError("textual", problem, SUPPORTED)


def visible_widgets(screen: Screen) -> dict[Widget, tuple[Region, Region]]:
    """The screen's visible widgets, topmost first: widget -> (region, clip)."""
    visible = getattr(getattr(screen, "_compositor", None), "visible_widgets", None)
    if not isinstance(visible, dict):
        raise _incompatible("Screen has no compositor with visible_widgets")
    return visible


def app_driver(app: App) -> Driver | None:
    """The app's driver, or None before the app runs or after it stops."""
    driver = getattr(app, "_driver", False)
    if driver is not None and not isinstance(driver, Driver):
        raise _incompatible("App has no _driver")
    return driver


def writer_backlog(driver: Driver) -> Callable[[], int]:
    """How many writes wait in the driver's writer thread (always 0 for a driver without one)."""
    thread = getattr(driver, "_writer_thread", None)
    if thread is None:  # a headless or web driver, or one not in application mode
        return lambda: 0
    qsize = getattr(getattr(thread, "_queue", None), "qsize", None)
    if not callable(qsize):
        raise _incompatible("the driver's writer thread has no _queue")
    return qsize


def answers_queries(driver: Driver) -> bool:
    """Whether the driver reads a real terminal's answers (Textual's Linux driver does; headless,
    web and test drivers don't)."""
    return isinstance(driver, LinuxDriver)


def on_position_reports(driver: Driver, heard: Callable[[float], object]) -> None:
    """Call `heard(time.monotonic())` from the driver's input thread for each cursor-position
    report, as it is parsed; the event still goes on to the app, which ignores it."""
    process_message = getattr(driver, "process_message", None)
    if not callable(process_message):
        raise _incompatible("Driver has no process_message")

    def hear_reports(message: Message) -> None:
        if isinstance(message, events.CursorPosition):
            heard(time.monotonic())
        process_message(message)

    setattr(driver, "process_message", hear_reports)  # noqa: B010 - an instance, not the class


class LazyStrip(Strip):
    """A Strip whose Segments are built only when one of Textual's strip operations reads them
    (`segments()`), and which may keep the text it renders to (`rendered`)."""

    __slots__ = ("_built",)

    def __init__(self, cell_length: int) -> None:
        self._built: list[Segment] | None = None
        super().__init__((), cell_length)

    def segments(self) -> list[Segment]:
        raise NotImplementedError

    @property
    def _segments(self) -> list[Segment]:
        if self._built is None:
            self._built = self.segments()
        return self._built

    @_segments.setter
    def _segments(self, segments: list[Segment]) -> None:
        """Strip.__init__ assigns the (empty) segment list; the real ones come from segments()."""

    @property
    def rendered(self) -> str | None:
        """What `render` returned last time (Textual's own render cache), or None."""
        return self._render_cache

    @rendered.setter
    def rendered(self, text: str) -> None:
        self._render_cache = text


def check() -> None:
    """Check what can be checked before an app runs: the Strip slots RowStrip takes over, and the
    queue of Textual's writer thread."""
    if not {"_segments", "_render_cache"} <= set(Strip.__slots__):
        raise _incompatible("Strip has no _segments and _render_cache slots")
    if not callable(getattr(getattr(WriterThread(io.StringIO()), "_queue", None), "qsize", None)):
        raise _incompatible("WriterThread has no _queue")
    if not callable(getattr(LinuxDriver, "process_message", None)):
        raise _incompatible("LinuxDriver has no process_message")


def terminal_write(app: App, text: str) -> None:
    """Write `text` to the terminal as is (a notification escape), through the app's driver."""
    driver = app_driver(app)
    if driver is not None:
        driver.write(text)
