"""`tcall history`: show or clear the local call log (who, when, direction, duration, outcome).

The log lives only on this machine, is purged by `history_retention_days` each time it is opened,
and is never written at all when that setting is 0.
"""

from __future__ import annotations

import json
from datetime import datetime

import click

from tcall.engine.history import CallRecord, History
from tcall.engine.settings import Settings


def _line(record: CallRecord) -> str:
    when = datetime.fromtimestamp(record.started_at).strftime("%Y-%m-%d %H:%M")
    arrow = "->" if record.direction == "outgoing" else "<-"
    media = "video" if record.video else "audio"
    duration = f"{record.duration_s:.0f} s" if record.outcome == "answered" else "-"
    outcome = record.outcome if record.count == 1 else f"{record.outcome} x{record.count}"
    return f"{when}  {arrow} {record.contact:<24}  {outcome:<9}  {duration:>7}  {media}"


@click.command("history")
@click.option("--json", "as_json", is_flag=True, help='Print {"history": [...]}, newest first.')
@click.option("--clear", is_flag=True, help="Delete every entry of the call log.")
def command(as_json: bool, clear: bool) -> None:
    """Show the local call log, newest first (or empty it with --clear)."""
    history = History.open(Settings.load().history_retention_days)
    if clear:
        count = len(history.records)
        history.clear()
        click.echo(json.dumps({"cleared": count}) if as_json else f"cleared {count} entries")
        return
    if as_json:
        click.echo(json.dumps({"history": history.as_json()}))
        return
    records = history.records
    if not records:
        click.echo("no calls in the history")
    for record in records:
        click.echo(_line(record))
