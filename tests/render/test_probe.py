"""The capability probe, from the environment and against pseudo-terminals that answer or not."""

from __future__ import annotations

import os
import pty
import threading
import time

from tcall.tui.render.probe import (
    DA1_QUERY,
    KITTY_QUERY,
    Capabilities,
    choose_mode,
    from_env,
    probe,
)


def test_environment_alone() -> None:
    assert choose_mode(from_env({"TERM": "xterm-kitty"})) == "kitty"
    assert (
        choose_mode(from_env({"TERM": "xterm-256color", "COLORTERM": "truecolor"})) == "halfblock"
    )
    assert choose_mode(from_env({"TERM": "xterm-256color"})) == "256"
    assert choose_mode(from_env({"TERM": "dumb"})) == "ascii"
    in_tmux = from_env({"TERM": "tmux-256color", "TMUX": "/tmp/x,1,0", "TERM_PROGRAM": "kitty"})
    assert in_tmux.tmux and choose_mode(in_tmux) == "halfblock"
    assert choose_mode(Capabilities(sixel=True, truecolor=True)) == "sixel"


def answering_terminal(reply: bytes | None) -> tuple[int, threading.Thread, list[bytes]]:
    """A pty whose far end reads the queries and (unless reply is None) answers them."""
    master, slave = pty.openpty()
    seen: list[bytes] = []

    def far_end() -> None:
        got = b""
        deadline = time.monotonic() + 5
        while DA1_QUERY not in got and time.monotonic() < deadline:
            got += os.read(master, 4096)
        seen.append(got)
        if reply is not None:
            os.write(master, reply)

    thread = threading.Thread(target=far_end, daemon=True)
    thread.start()
    return slave, thread, seen


def test_terminal_that_answers_sixel_kitty_and_cell_size() -> None:
    reply = b"\x1b_Gi=31;OK\x1b\\\x1b[6;18;9t\x1b[?62;4;22c"
    slave, thread, seen = answering_terminal(reply)
    caps = probe({"TERM": "xterm-256color"}, slave, slave, timeout=5)
    thread.join(5)
    assert KITTY_QUERY in seen[0] and seen[0].endswith(DA1_QUERY)
    assert caps.answered and caps.sixel and caps.kitty and caps.cell_px == (9, 18)
    assert choose_mode(caps) == "kitty"


def test_sixel_only_terminal() -> None:
    slave, thread, _ = answering_terminal(b"\x1b[?63;1;4c")
    caps = probe({"TERM": "xterm-256color"}, slave, slave, timeout=5)
    thread.join(5)
    assert caps.sixel and not caps.kitty and choose_mode(caps) == "sixel"


def test_silent_terminal_costs_one_short_timeout() -> None:
    slave, thread, seen = answering_terminal(None)
    started = time.monotonic()
    caps = probe({"TERM": "xterm-256color", "COLORTERM": "truecolor"}, slave, slave, timeout=0.3)
    elapsed = time.monotonic() - started
    thread.join(5)
    assert seen and DA1_QUERY in seen[0]
    assert 0.25 <= elapsed < 2
    assert not caps.answered and choose_mode(caps) == "halfblock"


def test_not_a_terminal_asks_nothing() -> None:
    r, w = os.pipe()
    try:
        caps = probe({"TERM": "xterm-256color"}, r, w)
        os.close(w)
        assert os.read(r, 100) == b""
        assert choose_mode(caps) == "256"
    finally:
        os.close(r)
