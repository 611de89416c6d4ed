"""The Textual accessors, against a real Textual app under run_test(); a missing target is a
CompatError naming Textual's version."""

from __future__ import annotations

import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
from textual.app import App, ComposeResult
from textual.driver import Driver
from textual.widgets import Label

from tcall.engine.errors import CompatError
from tcall.tui.compat import textual as textual_compat


class Covered(App[None]):
    CSS = "#top { layer: above; } Screen { layers: below above; }"

    def compose(self) -> ComposeResult:
        yield Label("under", id="under")
        yield Label("top", id="top")


def test_check_passes() -> None:
    textual_compat.check()


async def test_accessors_on_a_running_app() -> None:
    app = Covered()
    assert textual_compat.app_driver(app) is None  # not running yet
    async with app.run_test(size=(20, 5)) as pilot:
        await pilot.pause()
        driver = textual_compat.app_driver(app)
        assert isinstance(driver, Driver)
        visible = textual_compat.visible_widgets(app.screen)
        under, top = app.query_one("#under"), app.query_one("#top")
        assert list(visible).index(top) < list(visible).index(under)  # topmost first
        assert textual_compat.writer_backlog(driver)() == 0  # headless: no writer thread


def test_writer_backlog_reads_the_writer_thread_queue() -> None:
    from textual.drivers._writer_thread import WriterThread

    class Terminal:
        _writer_thread = WriterThread(None)  # type: ignore[arg-type]

    Terminal._writer_thread.write("queued")  # not started, so it stays in the queue
    assert textual_compat.writer_backlog(Terminal())() == 1  # type: ignore[arg-type]


async def test_missing_targets_raise_compat_errors_naming_the_version(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    message = f"^textual {version('textual')}: "
    app = Covered()
    async with app.run_test(size=(20, 5)):
        screen = app.screen
        monkeypatch.delattr(screen, "_compositor")
        with pytest.raises(CompatError, match=message + "Screen"):
            textual_compat.visible_widgets(screen)
        monkeypatch.undo()

    class NoDriver:
        pass

    with pytest.raises(CompatError, match=message + "App"):
        textual_compat.app_driver(NoDriver())  # type: ignore[arg-type]

    class Terminal:
        _writer_thread = object()

    with pytest.raises(CompatError, match=message + ".*writer thread"):
        textual_compat.writer_backlog(Terminal())  # type: ignore[arg-type]


def test_supported_range_matches_the_pin() -> None:
    pyproject = Path(__file__).parents[2] / "pyproject.toml"
    pins = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    assert f"textual{textual_compat.SUPPORTED}" in pins
