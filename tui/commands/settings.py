"""`tcall settings get|set|list`: read and change config.toml, one checked key at a time."""

from __future__ import annotations

import json
from typing import Any

import click

from tcall.engine.settings import SCHEMA, Settings


def _show(value: Any) -> str:
    return ",".join(value) if isinstance(value, list) else str(value)


def _load() -> Settings:
    settings = Settings.load()
    for warning in settings.warnings:
        click.echo(f"tcall: warning: {warning}", err=True)
    return settings


@click.group("settings")
def command() -> None:
    """Read and change settings (config.toml)."""


@command.command("get")
@click.argument("key")
@click.option(
    "--json", "as_json", is_flag=True, help="Print the value as JSON (a list stays a list)."
)
def get(key: str, as_json: bool) -> None:
    """Print the value of KEY."""
    value = _load().get(key)
    click.echo(json.dumps(value) if as_json else _show(value))


@command.command("set")
@click.argument("key")
@click.argument("value")
def set_(key: str, value: str) -> None:
    """Set KEY to VALUE (lists are comma-separated; "" clears)."""
    click.echo(f"{key} = {_show(_load().set(key, value))}")


@command.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object of key: value.")
def list_(as_json: bool) -> None:
    """Show every setting, its value and what it allows."""
    values = _load().as_dict()
    if as_json:
        click.echo(json.dumps(values))
        return
    width = max(len(key) for key in SCHEMA)
    for key, value in values.items():
        click.echo(f"{key:<{width}}  {_show(value) or '(empty)'}   [{SCHEMA[key].allowed}]")
