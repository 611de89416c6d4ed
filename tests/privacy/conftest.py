"""Fixtures for privacy tests: real `tcall call` / `tcall listen` processes through a real
`tcall serve`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.relays import ServeProcess
from tests.support.users import Couple, User, stop_leftovers


@pytest.fixture(scope="module")
def relay() -> Iterator[ServeProcess]:
    # One relay per module is safe: every test has fresh identities, so fresh mailboxes.
    server = ServeProcess()
    yield server
    server.stop()


@pytest.fixture
def couple(tmp_path: Path, relay: ServeProcess) -> Couple:
    """Makes an alice and a bob, each a contact of the other, in a folder of their own, so that
    several couples can call at the same time."""

    def make(folder: str) -> tuple[User, User]:
        alice = User("alice", tmp_path / folder / "alice", relay.url)
        bob = User("bob", tmp_path / folder / "bob", relay.url)
        alice.add(bob)
        bob.add(alice)
        return alice, bob

    return make


@pytest.fixture
def people(couple: Couple) -> tuple[User, User]:
    return couple(".")


@pytest.fixture
def carol(tmp_path: Path, relay: ServeProcess, people: tuple[User, User]) -> User:
    """A stranger to bob: she has bob's address, he does not have hers."""
    user = User("carol", tmp_path / "carol", relay.url)
    user.add(people[1])
    return user


@pytest.fixture(autouse=True)
def no_leftover_processes() -> Iterator[None]:
    yield
    stop_leftovers()
