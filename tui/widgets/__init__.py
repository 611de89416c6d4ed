"""Textual widgets of tcall."""

from tcall.tui.widgets.group_grid import GroupGrid, MemberTile, grid_shape
from tcall.tui.widgets.mic_meter import MicMeter
from tcall.tui.widgets.video_view import RowStrip, VideoView

__all__ = ["GroupGrid", "MemberTile", "MicMeter", "RowStrip", "VideoView", "grid_shape"]
