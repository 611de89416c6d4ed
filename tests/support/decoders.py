"""Small decoders for the tests: sixel and kitty output back into pixels, ANSI into a screen."""

from __future__ import annotations

import base64
import re
import zlib
from typing import Any

import numpy as np
import pyte


def decode_sixel(data: bytes) -> tuple[np.ndarray, dict[int, tuple[int, int, int]]]:
    """Palette-index image (-1 where nothing was drawn) and the palette, in percent."""
    match = re.fullmatch(rb'\x1bP[0-9;]*q"1;1;(\d+);(\d+)(.*)\x1b\\', data, re.S)
    assert match, "not a DCS sixel sequence with raster attributes"
    w, h = int(match.group(1)), int(match.group(2))
    body = match.group(3)
    image = np.full((h + 6, w), -1, dtype=np.int32)
    palette: dict[int, tuple[int, int, int]] = {}
    x = y = colour = 0
    for token in re.finditer(
        rb"#(\d+)(?:;2;(\d+);(\d+);(\d+))?|!(\d+)([?-~])|([?-~])|(\$)|(-)", body
    ):
        sel, r, g, b, count, rep_ch, ch, cr, nl = token.groups()
        if sel is not None:
            colour = int(sel)
            if r is not None:
                palette[colour] = (int(r), int(g), int(b))
        elif ch is not None or rep_ch is not None:
            n = int(count) if count else 1
            bits = (ch or rep_ch)[0] - 63
            for bit in range(6):
                if bits & (1 << bit):
                    image[y + bit, x : x + n] = colour
            x += n
        elif cr:
            x = 0
        elif nl:
            x, y = 0, y + 6
    leftover = re.sub(rb"#\d+(;2;\d+;\d+;\d+)?|!\d+[?-~]|[?-~$-]", b"", body)
    assert leftover == b"", f"stray bytes in sixel data: {leftover[:20]!r}"
    return image[:h], palette


def decode_kitty(data: bytes) -> tuple[dict[str, str], np.ndarray]:
    """The first chunk's control keys and the transmitted RGB image."""
    chunks = re.findall(rb"\x1b_G([^;]*);([A-Za-z0-9+/=]*)\x1b\\", data)
    assert chunks and b"".join(b"\x1b_G%s;%s\x1b\\" % c for c in chunks) == data
    keys = dict(kv.split("=") for kv in chunks[0][0].decode().split(","))
    for i, (control, _) in enumerate(chunks):
        more = dict(kv.split("=") for kv in control.decode().split(","))["m"]
        assert more == ("0" if i == len(chunks) - 1 else "1")
    raw = base64.standard_b64decode(b"".join(payload for _, payload in chunks))
    if keys.get("o") == "z":
        raw = zlib.decompress(raw)
    w, h = int(keys["s"]), int(keys["v"])
    return keys, np.frombuffer(raw, dtype=np.uint8).reshape(h, w, 3)


def screen_of(data: bytes, cols: int, rows: int) -> pyte.Screen:
    """What a VT terminal of cols x rows shows after `data`."""
    screen = pyte.Screen(cols, rows)
    pyte.ByteStream(screen).feed(data)
    return screen


def app_screen(app: Any) -> pyte.Screen:
    """What a terminal shows of a Textual app under test (its whole screen, modals included)."""
    update = app.screen._compositor.render_update(full=True, screen_stack=app._background_screens)
    width, height = app.size
    return screen_of(update.render_segments(app.console).encode(), width, height)


def rgb(colour: str) -> tuple[int, int, int]:
    """pyte's hex colour name back to RGB."""
    return int(colour[0:2], 16), int(colour[2:4], 16), int(colour[4:6], 16)
