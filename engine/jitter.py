"""The marker-release jitter buffer now lives with tcall's other aiortc hooks, in compat.aiortc."""

from __future__ import annotations

from tcall.engine.compat.aiortc import MarkerJitterBuffer, release_on_marker

__all__ = ["MarkerJitterBuffer", "release_on_marker"]
