"""`tcall devices`: list cameras, microphones and speakers, or say plainly that none were found."""

from __future__ import annotations

import json

import click

from tcall.engine.devices import as_dicts, list_all

KINDS = (("camera", "Cameras"), ("microphone", "Microphones"), ("speaker", "Speakers"))


@click.command("devices")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
def command(as_json: bool) -> None:
    """List media devices."""
    devices = list_all()
    if as_json:
        click.echo(json.dumps(as_dicts(devices)))
        return
    for kind, title in KINDS:
        found = [d for d in devices if d.kind == kind]
        click.echo(f"{title}:")
        if not found:
            click.echo("  none found")
        for device in found:
            click.echo(
                f"  {device.spec}" + (f"  ({device.name})" if device.name != device.spec else "")
            )
