"""Shared fixtures: the PostgreSQL server for the tests that need one."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from postgres_server import postgres_reason


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """The PostgreSQL server's URL, or a skip that says why there is none."""
    url, reason = postgres_reason()
    if url is None:
        if os.environ.get("ACTORS_REQUIRE_POSTGRES"):
            pytest.fail(f"ACTORS_REQUIRE_POSTGRES is set but {reason}")
        pytest.skip(reason)
    yield url
