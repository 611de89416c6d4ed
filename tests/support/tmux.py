"""A tmux server of a test's own: real terminals for the TUI and the renderers, read back with
`capture-pane`. Each server has its own socket name, so tests and test workers never share one."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class Tmux:
    def __init__(self) -> None:
        self.socket = f"tcall-test-{uuid.uuid4().hex[:8]}"

    def __call__(self, *args: str, timeout: float = 10) -> str:
        """`tmux ARGS` on this server; its output (it must succeed)."""
        result = subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=timeout
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    def new_session(
        self,
        *command: str,
        size: tuple[int, int],
        name: str | None = None,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        """A detached session of cols x rows running `command`, with no tmux.conf read."""
        args = ["-f", "/dev/null", "new-session", "-d", "-x", str(size[0]), "-y", str(size[1])]
        args += ["-s", name] if name else []
        args += ["-c", str(cwd)] if cwd else []
        args += [arg for key, value in (env or {}).items() for arg in ("-e", f"{key}={value}")]
        self(*args, *command)

    def kill(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=10)


@contextmanager
def tmux_server() -> Iterator[Tmux]:
    server = Tmux()
    try:
        yield server
    finally:
        server.kill()
