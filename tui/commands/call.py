"""`tcall call NAME`: place a call from the command line, headless, with a summary or JSON events."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import signal
import sys
from collections.abc import Callable
from typing import Any

import click

from tcall.engine.call import CallOptions
from tcall.engine.core.outcome import exit_code
from tcall.engine.errors import ExitCode, RelayUnreachable, UsageError
from tcall.engine.events import Event, SnapshotChanged, Summary
from tcall.engine.media import sound
from tcall.engine.media.audio import AUDIO_SPECS
from tcall.engine.media.video import VIDEO_SPECS
from tcall.engine.phone import ECHO, Phone
from tcall.engine.session import CODECS
from tcall.engine.text import printable
from tcall.tui.cli import Bounded
from tcall.tui.commands.control import obey_stdin

# Each ends a call as Ctrl-C does: hang up, record history, print the summary, exit 130. SIGHUP is a
# closed terminal, a dropped SSH session or a killed tmux session: the peer must still be told.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
MAX_SIZE = (3840, 2160)
DAY = 86400.0


def parse_size(text: str) -> tuple[int, int]:
    """`WIDTHxHEIGHT`, each from 16 up to 3840x2160 (a larger one would only exhaust memory)."""
    match = re.fullmatch(r"([0-9]{1,5})[xX]([0-9]{1,5})", text.strip())
    if not match or not all(
        16 <= int(n) <= most for n, most in zip(match.groups(), MAX_SIZE, strict=True)
    ):
        raise UsageError(
            f"bad --resolution {printable(text)!r} (expected WIDTHxHEIGHT from 16x16 to "
            f"{MAX_SIZE[0]}x{MAX_SIZE[1]}, e.g. 640x480)"
        )
    width, height = (int(n) for n in match.groups())
    return width & ~1, height & ~1  # the encoders need even sizes


class EventPrinter:
    """JSON lines on stdout, or short human lines on stderr with the summary on stdout."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json

    def __call__(self, typed: Event | dict[str, Any]) -> None:
        if isinstance(typed, SnapshotChanged):
            return  # for UIs that show contacts and settings; nothing to print
        event = typed.to_json() if isinstance(typed, Event) else typed
        if self.as_json:
            click.echo(json.dumps(event))  # JSON escapes control characters itself
            sys.stdout.flush()
            return
        # A relay's or a peer's words must not reach the terminal as control sequences.
        event = {k: printable(v) if isinstance(v, str) else v for k, v in event.items()}
        kind = event["event"]
        if kind == "notice":
            click.echo(f"tcall: {event['message']}", err=True)
        elif kind == "state":
            click.echo(f"tcall: {event['state']}", err=True)
        elif kind == "stats":
            latency = event.get("latency_ms")
            member = f"{event['member']}: " if event.get("member") else ""
            click.echo(
                f"  {member}{event['fps_received']:>5} fps in  {event['fps_sent']:>5} fps out  "
                f"{event['resolution']}  {event['kbps_received']} kbps in  "
                f"rtt {event['rtt_ms']} ms  latency {latency} ms",
                err=True,
            )
        elif kind == "summary":
            self.summary(event)
        elif kind == "incoming":
            badge = "verified" if event["verified"] else "NOT verified"
            media = "video" if event["video"] else "audio"
            others = event.get("members")
            group = f" with {', '.join(map(printable, others))}" if others else ""
            click.echo(
                f"tcall: incoming {media} call from {event['from']} ({badge}){group}", err=True
            )
        elif kind in ("silenced", "missed"):
            click.echo(f"tcall: {kind} a call from {event['from']} ({event['reason']})", err=True)
        elif kind == "refused":
            click.echo(f"tcall: refused a message: {event['message']}", err=True)
        elif kind == "request":
            who = event["name"] or f"unknown {event['fingerprint'][:19]}"
            ref = event["name"] or event["fingerprint"][:9].replace(" ", "")
            click.echo(
                f"tcall: {who} wants to reach you (fingerprint {event['fingerprint']}): "
                f"tcall contacts accept|ignore|block {ref}",
                err=True,
            )
        elif kind == "video_request":
            click.echo(
                f"tcall: {event['from']} turned video on: type 'allow-video' to see it", err=True
            )
        elif kind == "peer_video":
            click.echo(f"tcall: the peer's video is {'on' if event['on'] else 'off'}", err=True)
        elif kind == "relay":
            click.echo(f"tcall: relay {event['url']} {event['state']}", err=True)
        elif kind == "joined":
            badge = "verified" if event["verified"] else "NOT verified"
            click.echo(
                f"tcall: {event['member']} joined ({badge}); group code {event['code']}", err=True
            )
        elif kind == "left":
            click.echo(
                f"tcall: {event['member']} left ({event['reason']}); group code {event['code']}",
                err=True,
            )

    def summary(self, event: dict[str, Any]) -> None:
        if event.get("reason") and event["outcome"] not in ("answered", "interrupted"):
            click.echo(f"tcall: error: {event['reason']}", err=True)
        if "members" in event:
            lines = [f"group call {event['outcome']}", f"  frames sent      {event['frames_sent']}"]
            for member in event["members"]:
                name = printable(member["member"])
                if member.get("setup_ms") is None:
                    lines.append(f"  {name}: no media")
                    continue
                lines.append(
                    f"  {name}: {member['frames_received']} frames received "
                    f"({member['fps_received']} fps), latency median "
                    f"{member['latency_ms_median']} ms, setup {member['setup_ms']} ms"
                )
            click.echo("\n".join(lines))
            return
        peer = f" with {event['peer']}" if event.get("peer") else ""
        if event.get("setup_ms") is None:  # a call that never got to media
            click.echo(f"call{peer} {event['outcome']}")
            return
        lines = [
            f"call{peer} {event['outcome']}",
            f"  frames sent      {event['frames_sent']}",
            f"  frames received  {event['frames_received']} ({event['fps_received']} fps)",
            f"  setup            {event['setup_ms']} ms (dial to first frame)",
            f"  latency          median {event['latency_ms_median']} ms, "
            f"p95 {event['latency_ms_p95']} ms (glass to glass)",
        ]
        click.echo("\n".join(lines))


async def _run(
    names: list[str],
    options: CallOptions,
    emit: EventPrinter,
    ring_timeout: float,
    invites: bool = True,
) -> dict[str, Any]:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for number in STOP_SIGNALS:
        loop.add_signal_handler(number, stop.set)
    try:
        return await _call(names, options, emit, stop, ring_timeout, invites)
    finally:
        for number in STOP_SIGNALS:
            loop.remove_signal_handler(number)


async def _call(
    names: list[str],
    options: CallOptions,
    emit: EventPrinter,
    stop: asyncio.Event,
    ring_timeout: float,
    invites: bool,
) -> dict[str, Any]:
    # The Phone reports each call's summary too; here the command prints the one summary itself.
    phone = Phone(lambda e: None if isinstance(e, Summary) else emit(e), ring_timeout=ring_timeout)
    try:
        if names != [ECHO] or any(c.name == ECHO for c in phone.snapshot.contacts):
            for name in names:  # an unknown contact: a usage error before any traffic
                phone.snapshot.contact(name)
            if len(names) > 1 and ECHO in names:
                raise UsageError("the echo test cannot join a group call")
            try:
                await phone.start()
            except RelayUnreachable as exc:
                return Summary("relay_unreachable", reason=str(exc)).to_json()
        call: Any
        if len(names) > 1:
            call = await phone.dial_group(names, options, invites=invites)
        else:
            call = await phone.dial(names[0], options)
        obeying = asyncio.ensure_future(obey_stdin(phone, emit))
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({call.done, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        obeying.cancel()
        if not call.done.done():
            await phone.interrupt(call.call_id)
        summary: Summary = await call.done
        return dataclasses.replace(summary, call_id=None, peer=None).to_json()
    finally:
        await phone.close()


def call_flags(func: Callable[..., Any]) -> Callable[..., Any]:
    """The flags `call` and `listen` share. The command gets `ring_timeout`, `as_json`, and the
    media flags as keyword arguments for `call_options`."""
    flags = [
        click.option("--video", default="auto", show_default=True, help=f"auto|{VIDEO_SPECS}"),
        click.option("--audio", default="auto", show_default=True, help=f"auto|{AUDIO_SPECS}"),
        click.option("--codec", type=click.Choice(CODECS), default="vp8", show_default=True),
        click.option(
            "--duration",
            type=Bounded(min=0.1, max=DAY),
            default=None,
            help="Hang up (each call) after S seconds.",
        ),
        click.option(
            "--connect-timeout", type=Bounded(min=0.1, max=3600), default=15.0, show_default=True
        ),
        click.option(
            "--ring-timeout",
            type=Bounded(min=1, max=3600),
            default=30.0,
            show_default=True,
            help="How long a call rings before it counts as unanswered.",
        ),
        click.option(
            "--resolution", default="640x480", show_default=True, help="Camera/pattern size."
        ),
        click.option("--fps", type=Bounded(min=1, max=120), default=30.0, show_default=True),
        click.option(
            "--camera",
            type=click.Choice(["on", "off"]),
            default=None,
            help="Start with the camera on or off (`camera on` on stdin turns it on later). "
            "Calls you place start with it on; calls you answer follow the setting "
            "answer_with_camera (off by default) unless this says otherwise.",
        ),
        click.option(
            "--json", "as_json", is_flag=True, help="Print one JSON object per event on stdout."
        ),
    ]
    for flag in reversed(flags):
        func = flag(func)
    return func


def call_options(
    video: str,
    audio: str,
    codec: str,
    duration: float | None,
    connect_timeout: float,
    resolution: str,
    fps: float,
    camera: str | None,
) -> CallOptions:
    width, height = parse_size(resolution)
    return CallOptions(
        video=video,
        audio=audio,
        codec=codec,
        duration=duration,
        connect_timeout=connect_timeout,
        width=width,
        height=height,
        fps=fps,
        camera_on=camera != "off",
        camera_chosen=camera is not None,
    )


@click.command("call")
@click.argument("names", nargs=-1, required=True, metavar="NAME...")
@click.option(
    "--invites/--no-invites",
    default=True,
    show_default=True,
    help="A group call: whether the others may bring more people in (you always may).",
)
@call_flags
def command(
    names: tuple[str, ...], invites: bool, ring_timeout: float, as_json: bool, **media: Any
) -> ExitCode:
    """Call NAME (a contact, or `echo` for the built-in echo test) and report what was measured.
    More than one NAME starts a group call with them all (up to 5: six people with you)."""
    options = call_options(**media)
    emit = EventPrinter(as_json)
    sound.preload()  # before the loop starts: the call's setup does not wait for it
    summary = asyncio.run(_run(list(names), options, emit, ring_timeout, invites))
    emit(summary)
    return exit_code(summary["outcome"])
