"""Kitty graphics protocol encoder: zlib-compressed RGB, sent in chunks, one image id reused.

Every frame is transmitted and placed with the same image id and placement id, so the terminal
replaces the previous frame in place instead of stacking images.
"""

from __future__ import annotations

import base64
import zlib

from tcall.tui.render.fit import Frame, letterbox, place

CHUNK = 4096  # the protocol's maximum payload per escape sequence


def tmux_wrap(seq: bytes) -> bytes:
    """Wrap one escape sequence in tmux's DCS passthrough (ESCs inside are doubled)."""
    return b"\x1bPtmux;" + seq.replace(b"\x1b", b"\x1b\x1b") + b"\x1b\\"


class KittyEncoder:
    """Sends the frame at no more than its own resolution; the terminal scales it to the box."""

    mode = "kitty"

    def __init__(
        self,
        image_id: int = 7341,
        cell_w: int = 10,
        cell_h: int = 20,
        compress: bool = True,
        tmux: bool = False,
    ) -> None:
        self.image_id = image_id
        self.cell_w = cell_w
        self.cell_h = cell_h
        self.compress = compress
        self.tmux = tmux

    def pixel_size(self, frame_w: int, frame_h: int, cols: int, rows: int) -> tuple[int, int]:
        """The canvas: the box's pixel size, shrunk so the picture is never upscaled by us."""
        box_w, box_h = cols * self.cell_w, rows * self.cell_h
        fitted = place(frame_w, frame_h, box_w, box_h)
        shrink = min(1.0, frame_w / fitted.w, frame_h / fitted.h)
        return max(1, round(box_w * shrink)), max(1, round(box_h * shrink))

    def encode(self, frame: Frame, cols: int, rows: int) -> bytes:
        w, h = self.pixel_size(frame.shape[1], frame.shape[0], cols, rows)
        raw = letterbox(frame, w, h).tobytes()
        payload = base64.standard_b64encode(zlib.compress(raw, 1) if self.compress else raw)
        keys = b"a=T,f=24,s=%d,v=%d,i=%d,p=1,c=%d,r=%d,C=1,q=2" % (
            w,
            h,
            self.image_id,
            cols,
            rows,
        )
        if self.compress:
            keys += b",o=z"
        chunks = [payload[i : i + CHUNK] for i in range(0, len(payload), CHUNK)]
        out = []
        for n, chunk in enumerate(chunks):
            more = b"1" if n < len(chunks) - 1 else b"0"
            control = (keys + b",m=" + more) if n == 0 else b"m=" + more
            seq = b"\x1b_G" + control + b";" + chunk + b"\x1b\\"
            out.append(tmux_wrap(seq) if self.tmux else seq)
        return b"".join(out)

    def clear(self) -> bytes:
        """Delete the image and its placements (when the view closes or is covered)."""
        seq = b"\x1b_Ga=d,d=I,i=%d,q=2\x1b\\" % self.image_id
        return tmux_wrap(seq) if self.tmux else seq
