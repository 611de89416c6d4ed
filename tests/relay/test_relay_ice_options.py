"""`tcall serve`'s ICE and TLS options, in-process: every bad one is one line and its exit code
(2 for the command line, 12 for a file), found before anything listens or starts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tcall.engine.errors import ExitCode
from tcall.tui.cli import main
from tests.support.tls import make_pki

SECRET = "0123456789abcdef0123456789abcdef"


def secret_file(folder: Path, text: str = SECRET, mode: int = 0o600) -> str:
    path = folder / "turn.secret"
    path.write_text(text + "\n")
    path.chmod(mode)
    return str(path)


def one_line_error(capsys: pytest.CaptureFixture[str], *words: str) -> str:
    err = capsys.readouterr().err
    assert err.startswith("tcall: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for word in words:
        assert word in err, err
    return err


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--stun", "turn:relay.example"], ["--stun", "stun: URL"]),
        (["--stun", "stun:[::1]:3478"], ["--stun", "IPv4"]),
        (["--turn", "turn://u:p@relay.example"], ["--turn", "no user or password"]),
        (["--turn", "turn:relay.example?transport=sctp"], ["--turn"]),
        (["--turn", "turn:relay.example"], ["--turn needs --turn-secret"]),
        (["--stun", "stun:a", "--stun", "stun:b", "--stun", "stun:c"] * 2, ["at most 4"]),
        (["--turn-ttl", "59"], ["--turn-ttl"]),
        (["--coturn", "--coturn-ports", "100-200"], ["--coturn-ports"]),
        (["--coturn", "--coturn-ports", "5000"], ["--coturn-ports"]),
        (["--coturn", "--coturn-external-ip", "relay.example"], ["--coturn-external-ip"]),
        (["--coturn", "--coturn-relay-ip", "x"], ["--coturn-relay-ip"]),
        (["--coturn", "--coturn-allow-peer", "10.0.0.0/8"], ["--coturn-allow-peer"]),
        (["--coturn", "--host", "localhost"], ["--host"]),
        (["--coturn", "--host", "0.0.0.0"], ["--coturn-external-ip"]),
        (["--cert", "x.pem"], ["--cert and --key go together"]),
    ],
)
def test_bad_options_are_usage_errors(
    capsys: pytest.CaptureFixture[str], args: list[str], words: list[str]
) -> None:
    assert main(["serve", "--port", "0", *args]) == ExitCode.USAGE
    one_line_error(capsys, *words)


def test_secret_without_turn_url_and_with_coturn(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = secret_file(tmp_path)
    assert main(["serve", "--turn-secret", secret]) == ExitCode.USAGE
    one_line_error(capsys, "--turn-secret needs")
    assert main(["serve", "--coturn", "--turn-secret", secret]) == ExitCode.USAGE
    one_line_error(capsys, "--coturn makes its own secret")


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o666])
def test_secret_file_others_can_read_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], mode: int
) -> None:
    secret = secret_file(tmp_path, mode=mode)
    args = ["serve", "--turn", "turn:127.0.0.1:3478", "--turn-secret", secret]
    assert main(args) == ExitCode.CONFIG
    one_line_error(capsys, secret, f"chmod 600 {secret}")


@pytest.mark.parametrize(
    ("text", "words"),
    [("short", ["at least 16"]), ("has a space in it, long enough", ["one line"])],
)
def test_weak_or_garbled_secret_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, words: list[str]
) -> None:
    secret = secret_file(tmp_path, text)
    args = ["serve", "--turn", "turn:127.0.0.1:3478", "--turn-secret", secret]
    assert main(args) == ExitCode.CONFIG
    one_line_error(capsys, *words)


def test_missing_or_odd_secret_file_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["serve", "--turn", "turn:127.0.0.1:3478", "--turn-secret"]
    assert main([*base, str(tmp_path / "none")]) == ExitCode.CONFIG
    one_line_error(capsys, "does not exist")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo, 0o600)
    assert main([*base, str(fifo)]) == ExitCode.CONFIG  # never blocks on it
    one_line_error(capsys, "FIFO")


def test_tls_key_others_can_read_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pki = make_pki(tmp_path)
    pki.key.chmod(0o644)
    assert main(["serve", "--cert", str(pki.cert), "--key", str(pki.key)]) == ExitCode.CONFIG
    one_line_error(capsys, "TLS key file", f"chmod 600 {pki.key}")


def test_tls_files_that_do_not_fit_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pki = make_pki(tmp_path / "one")
    other = make_pki(tmp_path / "two")
    assert main(["serve", "--cert", str(pki.cert), "--key", str(other.key)]) == ExitCode.CONFIG
    one_line_error(capsys, "cannot use TLS certificate", "key values mismatch")
    assert main(["serve", "--cert", str(pki.key), "--key", str(pki.key)]) == ExitCode.CONFIG
    one_line_error(capsys, "cannot use TLS certificate")
    missing = str(tmp_path / "missing.pem")
    assert main(["serve", "--cert", missing, "--key", str(pki.key)]) == ExitCode.CONFIG
    one_line_error(capsys, "no such file")
    assert main(["serve", "--cert", str(pki.cert), "--key", missing]) == ExitCode.CONFIG
    one_line_error(capsys, "does not exist")
