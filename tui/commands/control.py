"""Controlling calls from stdin, for scripts: one command per line, acting on the newest call.

accept [audio]   answer the ringing call (audio only with `audio`)
decline          decline the ringing call
hangup           end the call
camera on|off    turn our camera on or off mid-call
mute | unmute    our microphone
allow-video      show the peer's video after a `video_request` (ask_before_video)
invite NAME      bring contact NAME into the group call (issue #17)
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
from collections.abc import Callable

from tcall.engine.errors import TcallError
from tcall.engine.events import Event, Notice
from tcall.engine.phone import Phone


def _read_stdin(loop: asyncio.AbstractEventLoop, lines: asyncio.Queue[str]) -> None:
    if sys.stdin is None:  # started with no standard input at all
        return
    for line in sys.stdin:
        with contextlib.suppress(RuntimeError):  # the loop closed: we are exiting
            loop.call_soon_threadsafe(lines.put_nowait, line.strip())


async def _run(phone: Phone, command: str, args: list[str], call_id: str) -> None:
    if command == "accept":
        await phone.accept(call_id, video="audio" not in args)
    elif command == "decline":
        await phone.decline(call_id)
    elif command == "hangup":
        await phone.hangup(call_id)
    elif command == "camera" and args in (["on"], ["off"]):
        await phone.set_camera(call_id, args == ["on"])
    elif command in ("mute", "unmute"):
        await phone.set_muted(call_id, command == "mute")
    elif command == "allow-video":
        await phone.allow_video(call_id)
    elif command == "invite" and len(args) == 1:
        await phone.invite(call_id, args[0])
    else:
        raise TcallError(f"unknown command {' '.join([command, *args])!r}")


async def obey_stdin(phone: Phone, emit: Callable[[Event], None]) -> None:
    """Read commands from stdin until cancelled; errors become notices, never exits."""
    lines: asyncio.Queue[str] = asyncio.Queue()
    loop = asyncio.get_running_loop()
    threading.Thread(target=_read_stdin, args=(loop, lines), daemon=True).start()
    while True:
        words = (await lines.get()).split()
        calls = phone.call_ids()
        if not words:
            continue
        if not calls:
            emit(Notice(f"no call for {words[0]!r}"))
            continue
        try:
            await _run(phone, words[0], words[1:], calls[-1])
        except TcallError as exc:
            emit(Notice(str(exc)))
