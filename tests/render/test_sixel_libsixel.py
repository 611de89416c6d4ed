"""Our sixel output read by another implementation: libsixel's sixel2png, in a process of its own."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
from PIL import Image

from tcall.tui.render.sixel import SixelEncoder


def test_sixel_is_readable_by_libsixel(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    frame = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    six = tmp_path / "f.six"
    six.write_bytes(SixelEncoder(cell_w=8, cell_h=16).encode(frame, 8, 3))
    png = tmp_path / "f.png"
    subprocess.run(["sixel2png", "-i", str(six), "-o", str(png)], check=True, timeout=30)
    with Image.open(png) as img:
        assert img.size == (64, 48)
