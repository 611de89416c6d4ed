"""`tcall view` in-process: piped output and bad arguments (tests/render/test_view_tmux.py runs it
in a real terminal)."""

from __future__ import annotations

import re

import pytest

from tcall.engine.errors import ExitCode
from tcall.tui.cli import main
from tcall.tui.render.delta import SYNC_BEGIN, SYNC_END
from tests.support.decoders import decode_kitty, decode_sixel, screen_of


def test_piped_output_is_the_encoded_frames(capfdbinary: pytest.CaptureFixture[bytes]) -> None:
    assert (
        main(["view", "pattern", "--frames", "3", "--size", "40x12", "--render", "halfblock"]) == 0
    )
    out = capfdbinary.readouterr().out
    assert out.count(SYNC_BEGIN) == 3
    screen = screen_of(out, 40, 12)
    assert all(line.count("▀") == 40 for line in screen.display)


@pytest.mark.parametrize("mode", ["sixel", "kitty"])
def test_piped_graphics_decode(mode: str, capfdbinary: pytest.CaptureFixture[bytes]) -> None:
    assert main(["view", "pattern", "--frames", "1", "--size", "16x6", "--render", mode]) == 0
    out = capfdbinary.readouterr().out
    image = re.search(rb"(\x1bP.*?\x1b\\)" if mode == "sixel" else rb"(\x1b_G.*\x1b\\)", out, re.S)
    assert image
    if mode == "sixel":
        pixels, _ = decode_sixel(image.group(1))
        assert pixels.shape == (120, 160) and (pixels >= 0).all()
    else:
        frame = out.split(SYNC_END)[0]
        keys, pixels = decode_kitty(frame[frame.index(b"\x1b_G") :])
        assert (keys["c"], keys["r"]) == ("16", "6") and pixels.any()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["view", "nope", "--frames", "1"], "unknown video source"),
        (["view", "pattern", "--size", "12"], "bad --size"),
        (["view", "pattern", "--render", "vga"], "Invalid value"),
        (["view", "file:/does/not/exist.mp4", "--frames", "1"], "exist"),
    ],
)
def test_bad_input_is_one_line(
    args: list[str], message: str, capfd: pytest.CaptureFixture[str]
) -> None:
    code = main(args)
    err = capfd.readouterr().err
    assert code in (ExitCode.USAGE, ExitCode.DEVICE_MISSING)
    assert err.startswith("tcall: error:") and message in err and err.count("\n") == 1
