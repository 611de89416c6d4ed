"""One module per `tcall` subcommand; each exposes a click command named `command`."""
