"""The `tcall` command line: builds the click group, maps every failure to one line and an ExitCode."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

import click

from tcall.engine import paths
from tcall.engine.errors import ExitCode, TcallError
from tcall.engine.text import printable

# Each module under tui/commands/ exposes a click command (or group) named `command`.
COMMAND_MODULES = [
    "tcall.tui.commands.call",
    "tcall.tui.commands.contacts",
    "tcall.tui.commands.devices",
    "tcall.tui.commands.history",
    "tcall.tui.commands.identity",
    "tcall.tui.commands.listen",
    "tcall.tui.commands.serve",
    "tcall.tui.commands.settings",
    "tcall.tui.commands.view",
]


class LazyGroup(click.Group):
    """Imports a subcommand's module only when it runs: `tcall settings` should not pay for
    importing aiortc, OpenCV and PyAV (over a second per process)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.modules = {name.rsplit(".", 1)[1]: name for name in COMMAND_MODULES}
        self.modules["id"] = self.modules.pop("identity")

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(self.modules)

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
        paths.set_home(home)
    if ctx.invoked_subcommand is None:
        from tcall.tui.app import TcallApp  # Textual loads only when the TUI itself runs

        TcallApp().run()


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
