"""Textual widgets of tcall."""

from tcall.tui.widgets.mic_meter import MicMeter
from tcall.tui.widgets.video_view import RowStrip, VideoView

__all__ = ["MicMeter", "RowStrip", "VideoView"]
