"""Sessions for the tests: one that sends the test pattern, and the ICE candidates an SDP offers."""

from __future__ import annotations

import re
from collections.abc import Callable

from tcall.engine.ice import IceSettings
from tcall.engine.media.video import open_video_source
from tcall.engine.session import Session


def pattern_session(
    width: int, height: int, on_state: Callable[[str], None], codec: str = "vp8"
) -> Session:
    """A Session sending the moving test pattern at width x height, without audio, with ICE as
    configured by default (no servers)."""
    return Session(
        ice=IceSettings(),
        video=open_video_source("pattern", width, height),
        audio=None,
        audio_sink=None,
        on_state=on_state,
        codec=codec,
    )


def candidates(sdp: str) -> list[str]:
    """The `a=candidate:` lines of an SDP."""
    return re.findall(r"^a=candidate:.*$", sdp, flags=re.MULTILINE)
