"""Reading what a Session offered: the ICE candidates of an SDP."""

from __future__ import annotations

import re


def candidates(sdp: str) -> list[str]:
    """The `a=candidate:` lines of an SDP."""
    return re.findall(r"^a=candidate:.*$", sdp, flags=re.MULTILINE)
