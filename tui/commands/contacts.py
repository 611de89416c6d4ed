"""`tcall contacts`: add, list, remove, rename, block, unblock and verify contacts, and send,
list, accept, ignore or block contact requests (engine/requests.py)."""

from __future__ import annotations

import json
from datetime import datetime

import click

from tcall.engine import requests
from tcall.engine.address import parse_address
from tcall.engine.contacts import Contact, ContactBook
from tcall.engine.errors import ExitCode, UsageError
from tcall.engine.identity import fingerprint, load_or_create_identity
from tcall.engine.requests import RequestBook
from tcall.engine.safety import grouped, safety_number
from tcall.engine.text import printable

HOLD_S = 60  # how long `tcall serve` holds a message for someone offline, by default


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
    RequestBook.load().discard(contact.public_key)  # a request from them is answered
    _added(contact)
    click.echo(
        f"ask {contact.name} to add you too (your address: tcall id), or send them a contact "
        f"request: tcall contacts request {contact.name}"
    )


def _added(contact: Contact) -> None:
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
    """Never ring for NAME (a contact, or a contact request: its name or fingerprint)."""
    book = ContactBook.load()
    if any(c.name == name for c in book.contacts()):
        book.set_blocked(name, True)
        click.echo(f"blocked {name}")
        return
    try:
        contact = requests.block(RequestBook.load(), book, name)
    except UsageError:
        raise UsageError(f"unknown contact: {name}, and no contact request from it") from None
    click.echo(
        f"blocked {contact.name} (fingerprint {contact.fingerprint}): a blocked contact now, "
        f"whose calls and requests are dropped (tcall contacts unblock {contact.name} undoes it)"
    )


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


@command.command("request")
@click.argument("name")
@click.option(
    "--as",
    "as_name",
    default="",
    help="The name you suggest for yourself (default: none; they see your fingerprint).",
)
def request(name: str, as_name: str) -> None:
    """Ask contact NAME to add you back: sends your relay URL and a name, sealed to them."""
    import asyncio  # these load only for the one command that goes online

    from tcall.engine.phone import Phone  # aiortc and PyAV too

    async def send() -> str:
        phone = Phone(lambda event: None)
        try:
            await phone.send_request(name, as_name)
            return phone.relay_url
        finally:
            await phone.close()

    relay = asyncio.run(send())
    how = f"as {as_name}" if as_name else "with no name (they see your fingerprint; --as NAME)"
    via = f"your relay {printable(relay)}" if relay else "no relay of yours"
    click.echo(f"sent {name} a contact request {how}, with {via}")
    click.echo(
        f"{name} sees it if tcall is running there, or starts within the time the relay holds "
        f"it ({HOLD_S} s for tcall serve); your calls to them carry it too"
    )


@command.command("requests")
@click.option("--json", "as_json", is_flag=True, help='Print {"requests": [...]}, newest first.')
def requests_(as_json: bool) -> None:
    """List contact requests: people who have your address and ask you to add them."""
    pending = RequestBook.load().pending()
    if as_json:
        click.echo(json.dumps({"requests": [r.to_json() for r in pending]}))
        return
    if not pending:
        click.echo("no contact requests")
        return
    for r in pending:
        when = datetime.fromtimestamp(r.received_at).strftime("%Y-%m-%d %H:%M")
        relay = printable(r.relay_url) or "-"
        click.echo(
            f"{when}  {printable(r.label)} wants to reach you (fingerprint {r.fingerprint})  "
            f"{relay}"
        )
    click.echo(
        "answer with: tcall contacts accept|ignore|block NAME, or the start of the fingerprint "
        "(accept --name NAME chooses the name)",
        err=True,
    )


@command.command("accept")
@click.argument("request_from", metavar="NAME_OR_FINGERPRINT")
@click.option("--name", default="", help="The contact name to give them (default: theirs).")
def accept(request_from: str, name: str) -> None:
    """Add whoever sent a contact request, with the key and relay it came with."""
    _added(requests.accept(RequestBook.load(), ContactBook.load(), request_from, name))


@command.command("ignore")
@click.argument("request_from", metavar="NAME_OR_FINGERPRINT")
def ignore(request_from: str) -> None:
    """Forget a contact request (its sender may ask again; block them to stop that)."""
    gone = requests.ignore(RequestBook.load(), request_from)
    click.echo(f"ignored the request from {printable(gone.label)} (fingerprint {gone.fingerprint})")
