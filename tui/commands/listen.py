"""`tcall listen`: wait for calls without the TUI, for bots and scripts.

Calls that policy lets ring are answered automatically with `--auto-answer` (contacts only), or by
a line on stdin (`accept`, `accept audio`, `decline`, ...: see tui/commands/control.py).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import click

from tcall.engine.core.outcome import exit_code
from tcall.engine.errors import ExitCode
from tcall.engine.events import Event, Summary
from tcall.engine.media import sound
from tcall.engine.phone import Phone
from tcall.tui.commands.call import STOP_SIGNALS, EventPrinter, call_flags, call_options
from tcall.tui.commands.control import obey_stdin


async def _listen(
    phone: Phone, emit: EventPrinter, once: bool, summaries: list[dict[str, Any]]
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for number in STOP_SIGNALS:  # SIGHUP too: a closed terminal still hangs up
        loop.add_signal_handler(number, stop.set)
    obeying = asyncio.ensure_future(obey_stdin(phone, emit))
    try:
        await phone.start()
        while not stop.is_set() and not (once and summaries):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.2)
            if phone.relay_lost is not None:
                raise phone.relay_lost  # a bot must never stay up deaf: exit 6
        for call_id in phone.call_ids():
            await phone.interrupt(call_id)
    finally:
        obeying.cancel()
        await phone.close()
        for number in STOP_SIGNALS:
            loop.remove_signal_handler(number)
    if stop.is_set() and not summaries:
        raise KeyboardInterrupt


@click.command("listen")
@click.option("--auto-answer", is_flag=True, help="Answer calls from contacts at once.")
@click.option("--once", is_flag=True, help="Exit after the first call, with its exit code.")
@click.option(
    "--exit-on-relay-loss",
    is_flag=True,
    help="Exit 6 when the relay link drops, instead of reconnecting (1, 2, 4 ... 30 s).",
)
@call_flags
def command(
    auto_answer: bool,
    once: bool,
    exit_on_relay_loss: bool,
    ring_timeout: float,
    as_json: bool,
    **media: Any,
) -> ExitCode:
    """Wait for calls (relay from `tcall settings set relay_url ...`)."""
    options = call_options(**media)
    printer = EventPrinter(as_json)
    summaries: list[dict[str, Any]] = []

    def emit(event: Event) -> None:
        if isinstance(event, Summary):
            summaries.append(event.to_json())
        printer(event)

    phone = Phone(
        emit,
        auto_answer_contacts=auto_answer,
        ring_timeout=ring_timeout,
        incoming_options=options,
        reconnect=not exit_on_relay_loss,
    )
    sound.preload()  # before the loop starts, not when the first call opens audio
    asyncio.run(_listen(phone, printer, once, summaries))
    if once and summaries:
        return exit_code(summaries[0]["outcome"])
    return ExitCode.INTERRUPTED
