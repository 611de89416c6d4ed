"""Shared fixtures, and the test tiers.

Every test gets its own TCALL_HOME, so no developer key or config leaks in.

Every test is in exactly one tier, given by TIERS below (its module, else its folder), and marked
with it: `pytest -m unit` runs one tier. A test module that TIERS does not cover is a collection
error, which fails the run: a new folder or module must be given its tier here, on purpose.

- unit: pure or in-process; no subprocess and no IP socket (both raise while such a test runs)
- integration: in-process, on loopback: real aiortc, Textual's pilot, in-process relays; no
  subprocess (it raises)
- e2e: processes: real `tcall` processes, tmux, PulseAudio, coturn, redis-server, namespaces
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import re
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

pytest.register_assert_rewrite("tests.support")
# Compiled modules and pytest's rewritten test modules are cached in __pycache__ (git ignores it)
# even where the environment says PYTHONDONTWRITEBYTECODE, as these machines do: compiling and
# rewriting every module again on each run was a third of the unit tier's 10 s. Set before any
# test or tcall module is imported.
sys.dont_write_bytecode = False

from tests.support.fuzz import examples  # noqa: E402 - after the rewrite hook, so it is rewritten

# Property tests that name no example count run Hypothesis' default (100) under CI, a tenth of it
# in a developer's loop (tests/support/fuzz.py).
settings.register_profile("tcall", max_examples=examples(100))
settings.load_profile("tcall")

TESTS = Path(__file__).parent
TIERS = {
    "calls": "e2e",
    "calls/test_call_refusals.py": "unit",
    "compat": "integration",
    "core": "unit",
    "identity": "unit",
    "identity/test_concurrent_writers.py": "e2e",
    "media": "unit",
    "media/test_media.py": "integration",  # sources paced in real time
    "media/test_playout_thread.py": "integration",  # playout in real time
    "media/test_opus_call.py": "integration",  # two Sessions on loopback
    "media/test_echo_audio.py": "integration",  # an echo call in-process, on loopback
    "media/test_audio_devices.py": "e2e",
    "media/test_audio_quality.py": "e2e",  # real calls, PulseAudio, namespaces
    "media/test_processing.py": "integration",  # WebRTC's audio processing over seconds of speech
    "media/test_audio_scoring.py": "integration",  # PESQ and STOI over seconds of speech
    "media/test_browser_peer.py": "e2e",  # headless Chromium as the far end
    "network": "e2e",  # calls through routers in namespaces that lose, cap and cut (issue #16)
    "privacy": "e2e",
    "privacy/test_history_file.py": "unit",
    "privacy/test_requests_file.py": "unit",
    "relay": "integration",
    "relay/test_relay_limits.py": "unit",
    "relay/test_relay_links.py": "unit",
    "relay/test_relay_protocol.py": "unit",
    "relay/test_relay_websocket.py": "unit",
    "relay/test_relay_ice_frame.py": "unit",
    "relay/test_relay_ice_options.py": "unit",
    "relay/test_turn_credentials.py": "unit",
    "relay/test_relay_turn.py": "e2e",
    "relay/test_relay_redis.py": "e2e",
    "relay/test_relay_serve.py": "e2e",
    "relay/test_relay_attacks.py": "e2e",
    "render": "unit",
    "render/test_direct_frames.py": "integration",
    "render/test_video_view.py": "integration",
    "render/test_direct_tmux.py": "e2e",
    "render/test_sixel_libsixel.py": "e2e",
    "render/test_view_tmux.py": "e2e",
    "session/test_dtls_mismatch.py": "integration",
    "session/test_malformed_sdp.py": "integration",
    "session/test_session.py": "e2e",
    "session/test_renewal.py": "integration",  # two Sessions on loopback
    "settings": "unit",
    "test_support_imports.py": "unit",
    "test_cli_options.py": "unit",
    "test_cli_process.py": "e2e",
    "tui": "integration",
    "tui/test_tmux_call.py": "e2e",
    "tui/test_tmux_group.py": "e2e",  # one TUI in a 3-person group call (issue #17)
    "tui/test_slow_link.py": "e2e",
    "wire": "unit",
    "wire/test_wire_aiortc.py": "integration",
}
IN_PROCESS = ("unit", "integration")
POPEN_INIT = subprocess.Popen.__init__


def _library_lookup() -> bool:
    """Whether ctypes.util.find_library is asking: it runs `ldconfig -p` (or gcc, ld) to find a
    shared library, once a process, when aioice (through ifaddr) or sounddevice is first imported.
    That is the import's doing, not the test's: whichever test imports them first would fail."""
    frame = sys._getframe(2)
    while frame is not None:
        if frame.f_globals.get("__name__") == "ctypes.util":
            return True
        frame = frame.f_back
    return False


def tier_of(path: Path) -> str | None:
    """The tier of the test module at `path`: its own entry in TIERS, else its nearest folder's."""
    relative = path.relative_to(TESTS)  # a path under tests/
    for key in (relative, *relative.parents):
        if key.as_posix() in TIERS:
            return TIERS[key.as_posix()]
    return None


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """With `-m` naming tiers only (`-m unit`, `-m "not e2e"`), a module of another tier is not
    even imported: the unit tier does not pay for importing the others."""
    words = set(re.findall(r"[A-Za-z_]\w*", config.option.markexpr)) - {"and", "or", "not"}
    if not words or not words <= set(TIERS.values()) or collection_path.suffix != ".py":
        return None
    tier = tier_of(collection_path) if collection_path.name.startswith("test_") else None
    if tier is None:
        return None
    selected = eval(config.option.markexpr, {"__builtins__": {}}, {t: t == tier for t in words})
    return None if selected else True


class Untiered(pytest.Module):
    def collect(self) -> list[pytest.Item | pytest.Collector]:
        raise self.CollectError(
            f"no tier for {self.path.relative_to(TESTS)}: add the module or its folder to TIERS "
            "in tests/conftest.py (unit, integration or e2e)"
        )


def pytest_pycollect_makemodule(
    module_path: Path, parent: pytest.Collector
) -> pytest.Module | None:
    """A test module under tests/ with no tier is a collection error, not a test left out."""
    if module_path.is_relative_to(TESTS) and tier_of(module_path) is None:
        return Untiered.from_parent(parent, path=module_path)
    return None


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if any(item.get_closest_marker(name) for name in set(TIERS.values())):
            raise pytest.UsageError(f"{item.nodeid}: tiers come from TIERS in tests/conftest.py")
        tier = tier_of(item.path) if item.path.is_relative_to(TESTS) else None
        if tier is not None:
            item.add_marker(tier)


def _refuse(what: str, tier: str, spawned: list[str]) -> Any:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        if what == "start a process" and _library_lookup():
            return POPEN_INIT(*args, **kwargs)
        if args and isinstance(args[0], subprocess.Popen):
            args[0]._child_created = False  # type: ignore[attr-defined]  # Popen.__del__ reads it
            args[0].returncode = None
        spawned.append(what)
        raise RuntimeError(f"a {tier} test may not {what}: make it e2e in tests/conftest.py")

    return refuse


def _no_ip(method: Any, spawned: list[str]) -> Any:
    def guarded(sock: socket.socket, *args: Any) -> Any:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            spawned.append(f"{method.__name__} an IP socket")
            raise RuntimeError("a unit test may not use the network: make it integration")
        return method(sock, *args)

    return guarded


@contextmanager
def _in_process_only(item: pytest.Item) -> Iterator[None]:
    """While a unit or integration test (and its fixtures) runs, starting a process raises, and for
    a unit test so does binding or connecting an IP socket; either fails the test even if the
    code under test swallows the error."""
    tier = next((t for t in IN_PROCESS if item.get_closest_marker(t)), None)
    if tier is None:
        yield
        return
    spawned: list[str] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(subprocess.Popen, "__init__", _refuse("start a process", tier, spawned))
        for name in ("fork", "forkpty", "system", "posix_spawn", "posix_spawnp"):
            patch.setattr(os, name, _refuse(f"call os.{name}", tier, spawned))
        for name in ("create_subprocess_exec", "create_subprocess_shell"):
            patch.setattr(asyncio, name, _refuse(f"call asyncio.{name}", tier, spawned))
            patch.setattr(asyncio.subprocess, name, _refuse(f"call asyncio.{name}", tier, spawned))
        if tier == "unit":
            for name in ("bind", "connect", "connect_ex"):
                patch.setattr(socket.socket, name, _no_ip(getattr(socket.socket, name), spawned))
        yield
    if spawned:
        pytest.fail(f"a {tier} test tried to {spawned[0]}: give it another tier in TIERS")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    with _in_process_only(item):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    with _in_process_only(item):
        return (yield)


@contextmanager
def _machine(run: str, alone: bool) -> Iterator[None]:
    """Hold this test run's machine lock: exclusive for a test marked `alone`, else shared. The
    gate keeps shared holders, who come and go between tests, from starving an exclusive one."""
    base = Path(tempfile.gettempdir()) / f"tcall-tests-{run}"
    with open(f"{base}.gate", "a") as gate, open(f"{base}.lock", "a") as lock:
        fcntl.flock(gate, fcntl.LOCK_EX)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
        finally:
            fcntl.flock(gate, fcntl.LOCK_UN)
        yield


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    # Tests that score real-time media (speech by PESQ, audio concealed) run alone on the machine:
    # on 2 cores, beside another worker's calls, a call that scores above 3.5 alone scored 1.2.
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if run is None:  # one process: nothing runs beside the test
        return (yield)
    with _machine(run, item.get_closest_marker("alone") is not None):
        return (yield)


@pytest.fixture(autouse=True)
def tcall_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    # Not under tmp_path: pytest numbers each test's tmp_path by listing every one made so far,
    # which cost the unit tier about a second; a test that wants tmp_path still gets one.
    home = Path(tempfile.mkdtemp(prefix="tcall-home-", dir=tmp_path_factory.getbasetemp()))
    monkeypatch.setenv("TCALL_HOME", str(home))
    yield home
