"""`tcall contacts`: add, list, remove, rename, block, unblock and verify contacts."""

from __future__ import annotations

import json

import click

from tcall.engine.address import parse_address
from tcall.engine.contacts import ContactBook
from tcall.engine.errors import ExitCode
from tcall.engine.identity import fingerprint, load_or_create_identity
from tcall.engine.safety import grouped, safety_number
from tcall.engine.text import printable


@click.group("contacts")
def command() -> None:
    """Manage contacts and their pinned keys."""


@command.command("add")
@click.argument("name")
@click.argument("address")
@click.option("--replace", "replace_key", is_flag=True, help="Accept a new key for NAME.")
def add(name: str, address: str, replace_key: bool) -> None:
    """Add NAME with the ADDRESS they gave you (`tcall id` shows theirs)."""
    parsed = parse_address(address)
    if parsed.public_key == load_or_create_identity().public_key:
        click.echo("tcall: warning: that address is your own", err=True)
    contact = ContactBook.load().add(
        name, parsed.public_key, parsed.relay_url, replace_key=replace_key
    )
    click.echo(f"added {contact.name} (fingerprint {contact.fingerprint}); unverified")
    click.echo(f"compare safety numbers with: tcall contacts verify {contact.name}")


@command.command("list")
@click.option("--json", "as_json", is_flag=True, help='Print {"contacts": [...]}.')
def list_(as_json: bool) -> None:
    """List contacts."""
    contacts = ContactBook.load().contacts()
    if as_json:
        click.echo(json.dumps({"contacts": [c.to_json() for c in contacts]}))
        return
    if not contacts:
        click.echo("no contacts yet: tcall contacts add NAME ADDRESS")
    for c in contacts:
        flags = ["verified" if c.verified else "unverified"]
        flags += ["blocked"] * c.blocked + ["auto-answer"] * c.auto_answer
        relay = printable(c.relay_url) or "-"
        click.echo(f"{c.name}  {c.fingerprint}  {relay}  {', '.join(flags)}")


@command.command("remove")
@click.argument("name")
def remove(name: str) -> None:
    """Forget NAME and their pinned key."""
    ContactBook.load().remove(name)
    click.echo(f"removed {name}")


@command.command("rename")
@click.argument("old")
@click.argument("new")
def rename(old: str, new: str) -> None:
    """Rename contact OLD to NEW (the key stays pinned)."""
    ContactBook.load().rename(old, new)
    click.echo(f"renamed {old} to {new}")


@command.command("block")
@click.argument("name")
def block(name: str) -> None:
    """Never ring for NAME."""
    ContactBook.load().set_blocked(name, True)
    click.echo(f"blocked {name}")


@command.command("unblock")
@click.argument("name")
def unblock(name: str) -> None:
    """Let NAME ring again."""
    ContactBook.load().set_blocked(name, False)
    click.echo(f"unblocked {name}")


@command.command("auto-answer")
@click.argument("name")
@click.argument("state", type=click.Choice(["on", "off"]))
def auto_answer(name: str, state: str) -> None:
    """Answer NAME's calls at once (needs the setting auto_answer = contacts)."""
    ContactBook.load().set_auto_answer(name, state == "on")
    click.echo(f"auto-answer for {name}: {state}")


@command.command("verify")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Mark verified without asking.")
def verify(name: str, yes: bool) -> ExitCode:
    """Show the safety number shared with NAME and mark NAME verified once it matches."""
    book = ContactBook.load()
    contact = book.get(name)
    ours = load_or_create_identity().public_key
    click.echo(f"Safety number with {name} (they see the same 60 digits):")
    click.echo(grouped(safety_number(ours, contact.public_key)))
    click.echo(f"Your fingerprint:  {fingerprint(ours)}")
    click.echo(f"{name}'s fingerprint: {contact.fingerprint}")
    if not yes and not click.confirm(f"Does {name} see the same number?", default=False):
        click.echo(f"{name} is not verified")
        return ExitCode.IDENTITY
    book.set_verified(name, True)
    click.echo(f"{name} is verified")
    return ExitCode.OK
