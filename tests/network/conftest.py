"""Calls between real processes through routers in network namespaces that lose packets, cap
bandwidth and cut links (issue #16): tests/support/lossy_link.py builds them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.lossy_link import Link, lossy_link
from tests.support.users import stop_leftovers


@pytest.fixture
def link() -> Iterator[Link]:
    """alice and bob, a router between them: tests/support/lossy_link.py."""
    with lossy_link() as built:
        yield built


@pytest.fixture(autouse=True)
def no_leftover_processes() -> Iterator[None]:
    yield
    stop_leftovers()
