"""`tcall view` as a real process in a real terminal (tmux): the picture fills the pane and moves."""

from __future__ import annotations

import re
import time

from tests.support.cli import TCALL
from tests.support.tmux import tmux_server


def test_view_pattern_under_tmux() -> None:
    cmd = f"{TCALL} view pattern --frames 600; sleep 30"
    with tmux_server() as tmux:
        tmux.new_session(cmd, size=(80, 24), env={"COLORTERM": "truecolor"})

        def capture() -> str:
            return tmux("capture-pane", "-p", "-e")

        deadline = time.monotonic() + 40
        first = capture()
        while first.count("▀") < 80 * 20 and time.monotonic() < deadline:
            time.sleep(0.2)
            first = capture()
        assert first.count("▀") >= 80 * 20, first[:500]
        time.sleep(0.5)
        second = capture()
        colours = re.compile(r"\x1b\[48;2;\d+;\d+;\d+m")
        assert colours.search(first) and colours.search(second)
        assert first != second  # the picture moves
