"""Golden bytes for each encoder on tiny frames, and sixel/kitty output decoded back to pixels."""

from __future__ import annotations

import numpy as np
import pytest

from tcall.engine.errors import UsageError
from tcall.tui.render import RENDER_MODES, make_encoder, make_text_encoder
from tcall.tui.render.fit import letterbox, place
from tcall.tui.render.halfblock import HalfBlockEncoder
from tcall.tui.render.kitty import KittyEncoder
from tcall.tui.render.palette256 import xterm_index
from tcall.tui.render.sixel import SixelEncoder, quantise
from tests.support.decoders import decode_kitty, decode_sixel, rgb, screen_of

RED, GREEN, BLUE, WHITE = [255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]
QUAD = np.array([[RED, BLUE], [GREEN, WHITE]], dtype=np.uint8)


def test_halfblock_golden() -> None:
    assert make_encoder("halfblock").encode(QUAD, 2, 1) == (
        b"\x1b[38;2;255;0;0;48;2;0;255;0m\xe2\x96\x80"
        b"\x1b[38;2;0;0;255;48;2;255;255;255m\xe2\x96\x80\x1b[0m\x1b[2D"
    )


def test_halfblock_repeats_no_colour_it_already_set() -> None:
    frame = np.zeros((4, 4, 3), dtype=np.uint8)
    frame[2:, :] = [0, 0, 7]
    frame[2:, 3] = [9, 9, 9]
    assert make_encoder("halfblock").encode(frame, 4, 2) == (
        b"\x1b[38;2;0;0;0;48;2;0;0;0m\xe2\x96\x80\xe2\x96\x80\xe2\x96\x80\xe2\x96\x80"
        b"\x1b[0m\x1b[4D\x1b[B"
        b"\x1b[38;2;0;0;7;48;2;0;0;7m\xe2\x96\x80\xe2\x96\x80\xe2\x96\x80"
        b"\x1b[38;2;9;9;9;48;2;9;9;9m\xe2\x96\x80\x1b[0m\x1b[4D\x1b[1A"
    )


def test_only_changed_colour_is_sent() -> None:
    frame = np.array([[RED, RED], [GREEN, BLUE]], dtype=np.uint8)
    assert make_encoder("halfblock").encode(frame, 2, 1) == (
        b"\x1b[38;2;255;0;0;48;2;0;255;0m\xe2\x96\x80\x1b[48;2;0;0;255m\xe2\x96\x80\x1b[0m\x1b[2D"
    )


def test_live_halfblocks_round_each_channel_to_four_levels() -> None:
    frame = np.array([[[1, 2, 130], [253, 255, 66]], [[5, 6, 7], [9, 9, 9]]], dtype=np.uint8)
    before = frame.copy()
    assert make_text_encoder("halfblock").encode(frame, 2, 1) == (
        b"\x1b[38;2;0;4;132;48;2;4;8;8m\xe2\x96\x80"
        b"\x1b[38;2;252;252;68;48;2;8;8;8m\xe2\x96\x80\x1b[0m\x1b[2D"
    )
    assert (frame == before).all()  # the caller's frame is not rounded in place
    rng = np.random.default_rng(1)
    photo = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    grid = HalfBlockEncoder(4).grid(photo, 60, 20)
    exact = HalfBlockEncoder().grid(photo, 60, 20)
    for live, true in ((grid.fg, exact.fg), (grid.bg, exact.bg)):
        assert live is not None and true is not None
        assert not (live % 4).any() and np.abs(live.astype(int) - true).max() <= 3
    with pytest.raises(ValueError, match="power of two"):
        HalfBlockEncoder(3)


def test_256_golden() -> None:
    assert make_encoder("256").encode(QUAD, 2, 1) == (
        b"\x1b[38;5;196;48;5;46m\xe2\x96\x80\x1b[38;5;21;48;5;231m\xe2\x96\x80\x1b[0m\x1b[2D"
    )


def test_xterm_index_picks_grey_ramp_for_greys() -> None:
    px = np.array([[[128, 128, 128], [0, 0, 0], [95, 135, 175], [238, 238, 238]]], np.uint8)
    assert xterm_index(px).tolist() == [[244, 16, 67, 255]]


def test_ascii_golden() -> None:
    assert make_encoder("ascii").encode(QUAD, 2, 1) == b"=+\x1b[0m\x1b[2D"
    grey = np.full((4, 4, 3), 128, dtype=np.uint8)
    assert (
        make_encoder("ascii").encode(grey, 2, 2) == b"::\x1b[0m\x1b[2D\x1b[B::\x1b[0m\x1b[2D\x1b[1A"
    )


def test_letterbox_keeps_aspect_and_centres() -> None:
    p = place(640, 480, 80, 48)
    assert (p.w, p.h, p.x, p.y) == (64, 48, 8, 0)
    canvas = letterbox(np.full((480, 640, 3), 200, np.uint8), 80, 48)
    assert canvas.shape == (48, 80, 3)
    assert (canvas[:, :8] == 0).all() and (canvas[:, 72:] == 0).all()
    assert (canvas[:, 8:72] == 200).all()


def test_text_output_draws_the_frame_where_the_cursor_is() -> None:
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 256, (12, 20, 3), dtype=np.uint8)
    data = b"\x1b[3;5H" + make_encoder("halfblock").encode(frame, 10, 3)
    screen = screen_of(data, 20, 8)
    assert (screen.cursor.y, screen.cursor.x) == (2, 4)  # back where it started
    canvas = letterbox(frame, 10, 6)
    for r in range(3):
        for c in range(10):
            cell = screen.buffer[2 + r][4 + c]
            assert cell.data == "▀"
            assert rgb(cell.fg) == tuple(canvas[2 * r, c])
            assert rgb(cell.bg) == tuple(canvas[2 * r + 1, c])
    assert screen.buffer[2][3].data == " " and screen.buffer[2][14].data == " "


def test_sixel_decodes_to_the_quantised_frame() -> None:
    rng = np.random.default_rng(2)
    frame = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    frame[:, :10] = 0  # long runs, so the repeat syntax is exercised
    enc = SixelEncoder(cell_w=4, cell_h=8)
    data = enc.encode(frame, 10, 3)
    image, palette = decode_sixel(data)
    w, h = enc.pixel_size(10, 3)
    assert (w, h) == (40, 24)
    assert (image == quantise(letterbox(frame, w, h))).all()
    assert palette[0] == (0, 0, 0) and palette[215] == (100, 100, 100)


def test_sixel_golden() -> None:
    frame = np.zeros((6, 2, 3), dtype=np.uint8)
    frame[:3, 1] = 255
    body = SixelEncoder(cell_w=2, cell_h=6).encode(frame, 1, 1).split(b"#215;2;100;100;100", 1)[1]
    assert body == b"#0~w$#215?F$\x1b\\"


@pytest.mark.parametrize("compress", [False, True])
def test_kitty_decodes_to_the_frame(compress: bool) -> None:
    rng = np.random.default_rng(4)
    frame = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
    enc = KittyEncoder(image_id=9, cell_w=8, cell_h=16, compress=compress)
    data = enc.encode(frame, 10, 4)
    keys, image = decode_kitty(data)
    assert keys["a"] == "T" and keys["i"] == "9" and keys["p"] == "1"
    assert (keys["c"], keys["r"]) == ("10", "4")
    assert (image == letterbox(frame, int(keys["s"]), int(keys["v"]))).all()
    assert data.count(b"\x1b_G") > 1  # 80x64x3 bytes do not fit one 4096-byte chunk


def test_kitty_golden_and_same_id_every_frame() -> None:
    enc = KittyEncoder(image_id=5, cell_w=1, cell_h=1, compress=False)
    frame = np.array([[RED]], dtype=np.uint8)
    expected = b"\x1b_Ga=T,f=24,s=1,v=1,i=5,p=1,c=1,r=1,C=1,q=2,m=0;/wAA\x1b\\"
    assert enc.encode(frame, 1, 1) == expected
    assert enc.encode(frame, 1, 1) == expected
    assert enc.clear() == b"\x1b_Ga=d,d=I,i=5,q=2\x1b\\"


def test_kitty_tmux_passthrough_doubles_escapes() -> None:
    enc = KittyEncoder(image_id=5, cell_w=1, cell_h=1, compress=False, tmux=True)
    data = enc.encode(np.array([[RED]], dtype=np.uint8), 1, 1)
    assert data.startswith(b"\x1bPtmux;\x1b\x1b_G") and data.endswith(b"\x1b\x1b\\\x1b\\")


def test_every_mode_has_an_encoder_and_bad_modes_are_refused() -> None:
    frame = np.zeros((8, 8, 3), dtype=np.uint8)
    for mode in RENDER_MODES[1:]:
        enc = make_encoder(mode)
        assert enc.mode == mode and enc.encode(frame, 4, 2)
    with pytest.raises(UsageError):
        make_encoder("auto")


def test_bad_frame_is_refused() -> None:
    with pytest.raises(ValueError, match="H x W x 3 uint8"):
        make_encoder("halfblock").encode(np.zeros((4, 4), dtype=np.uint8), 2, 2)
