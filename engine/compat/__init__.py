"""Every hook tcall has into aiortc's and aioice's private names, one module per library.

tcall needs about ten names that neither library offers publicly (see each module's docstring for
what each is for). Keeping them here, each checked against the installed library, means an upgrade
that moves one fails at once with one line naming the library and its version (a CompatError),
instead of a traceback in the middle of a call. pyproject.toml pins both libraries to the minor
release these hooks were written for. Nothing is patched on import: install() does it.
"""

from __future__ import annotations

from tcall.engine.compat import aioice, aiortc, encoder, opus


def install() -> None:
    """Install every engine hook (idempotent); a Session or EchoPeer calls it before it starts."""
    aioice.install()
    aiortc.install()
    encoder.install()
    opus.install()
