"""Textual widgets of tcall."""

from tcall.tui.widgets.video_view import RowStrip, VideoView

__all__ = ["RowStrip", "VideoView"]
