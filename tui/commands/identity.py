"""`tcall id`: create the identity key on first run; show the address, QR code and fingerprint."""

from __future__ import annotations

import json

import click

from tcall.engine.address import format_address, qr_lines
from tcall.engine.identity import load_or_create_identity
from tcall.engine.settings import Settings


@click.command("id")
@click.option("--json", "as_json", is_flag=True, help="Print {address, fingerprint, relay}.")
@click.option("--no-qr", is_flag=True, help="Leave out the QR code.")
def command(as_json: bool, no_qr: bool) -> None:
    """Show your tcall address (creating your identity key on first run)."""
    settings = Settings.load()
    identity = load_or_create_identity()
    address = format_address(identity.public_key, settings.relay_url)
    if as_json:
        info = {
            "address": address,
            "fingerprint": identity.fingerprint,
            "relay": settings.relay_url,
        }
        click.echo(json.dumps(info))
        return
    for warning in settings.warnings:
        click.echo(f"tcall: warning: {warning}", err=True)
    click.echo("Your tcall address (a friend runs `tcall contacts add NAME ADDRESS`):")
    click.echo(f"  {address}")
    if not no_qr:
        click.echo("\n".join(qr_lines(address)))
    click.echo(f"Fingerprint: {identity.fingerprint}")
    if settings.relay_url:
        click.echo(f"Relay: {settings.relay_url}")
    else:
        click.echo("Relay: not set (tcall settings set relay_url ws://HOST:PORT)")
