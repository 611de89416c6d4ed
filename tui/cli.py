"""The `tcall` command line: builds the click group, maps every failure to one line and an ExitCode."""

from __future__ import annotations

import importlib
import math
import sys
from collections.abc import Sequence
from typing import Any

import click

from tcall.engine.errors import ExitCode, TcallError
from tcall.engine.text import printable

# Each module under tui/commands/ exposes a click command (or group) named `command`. Its short
# help is kept here too, so that `tcall --help` lists the commands without importing any of them
# (tests/tui/test_cli_lazy.py checks that each line matches its command).
COMMANDS = {
    "call": ("tcall.tui.commands.call", "Call NAME (a contact, or `echo` for the echo test)."),
    "contacts": ("tcall.tui.commands.contacts", "Manage contacts and their pinned keys."),
    "devices": ("tcall.tui.commands.devices", "List media devices."),
    "history": ("tcall.tui.commands.history", "Show the local call log, newest first."),
    "id": ("tcall.tui.commands.identity", "Show your tcall address."),
    "listen": ("tcall.tui.commands.listen", "Wait for calls, without the TUI."),
    "serve": ("tcall.tui.commands.serve", "Run a relay."),
    "settings": ("tcall.tui.commands.settings", "Read and change settings (config.toml)."),
    "view": ("tcall.tui.commands.view", "Play a video source in this terminal."),
}
COMMAND_MODULES = [module for module, _ in COMMANDS.values()]


class Bounded(click.FloatRange):
    """A float in [min, max] that is a number: click's FloatRange lets NaN through (every
    comparison with NaN is false), and a NaN duration or rate would reach the engine."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if isinstance(number, float) and not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


class LazyGroup(click.Group):
    """Imports a subcommand's module only when it runs: `tcall settings` should not pay for
    importing aiortc, OpenCV and PyAV (over a second per process), nor `tcall --help` at all."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.modules = {name: module for name, (module, _) in COMMANDS.items()}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(self.modules)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = self.modules.get(cmd_name)
        if module is None:
            return None
        command: click.Command = importlib.import_module(module).command
        return command


@click.group(
    cls=LazyGroup,
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(package_name="tcall", prog_name="tcall", message="%(prog)s %(version)s")
@click.option(
    "--home",
    type=click.Path(file_okay=False),
    default=None,
    help="Keep every tcall file in this folder (same as TCALL_HOME).",
)
@click.pass_context
def cli(ctx: click.Context, home: str | None) -> None:
    """tcall: verifiable end-to-end encrypted video calls in the terminal."""
    if home:
        from tcall.engine import paths  # platformdirs: only when it is needed

        paths.set_home(home)
    if ctx.invoked_subcommand is None:
        from tcall.tui.app import TcallApp  # Textual loads only when the TUI itself runs

        app = TcallApp()
        app.run()
        if app.return_code:  # 130 after SIGHUP or SIGTERM
            raise click.exceptions.Exit(app.return_code)


def main(argv: Sequence[str] | None = None) -> int:
    """Run tcall; returns the exit code instead of raising, so tests can call it in-process."""
    try:
        result = cli.main(args=list(argv) if argv is not None else None, standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("tcall: interrupted", err=True)
        return ExitCode.INTERRUPTED
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        click.echo(f"tcall: error: {printable(exc.format_message())}", err=True)
        return ExitCode.USAGE
    except TcallError as exc:
        click.echo(f"tcall: error: {printable(exc)}", err=True)
        return exc.code
    except KeyboardInterrupt:
        click.echo("tcall: interrupted", err=True)
        return ExitCode.INTERRUPTED
    # Commands return an ExitCode (or None for success).
    return int(result) if isinstance(result, int) else ExitCode.OK


def entry() -> None:
    sys.exit(main())
