"""Text that others chose, made safe for a terminal.

A relay's error reason, a contact's relay URL, anything a peer or relay can put into a message may
carry control characters: an escape sequence that retitles the window, resets the terminal or
rewrites what is on screen, or a bidi override that makes text read backwards. Every human-readable
line tcall prints passes such text through `printable`, which shows those characters as escapes
(`\\x1b`, `\\u202e`) instead of sending them. JSON output needs nothing: JSON escapes them itself.
"""

from __future__ import annotations

import re

# C0 controls, DEL and C1 controls; bidi embeddings, overrides and isolates; zero-width marks.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group(0))
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: object) -> str:
    """`text` as a string with every control or direction-changing character shown escaped."""
    return _UNSAFE.sub(_escape, str(text))
