"""Shared fixtures: where the PostgreSQL server is, and temporary SQLite files."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


def _postgres_reason() -> tuple[str | None, str]:
    """(url, reason): url is None when no server answers, with the reason why."""
    url = os.environ.get("ACTORS_TEST_POSTGRES_URL") or DEFAULT_POSTGRES_URL
    try:
        import psycopg
    except ImportError:
        return None, "psycopg is not installed (pip install -e '.[test]')"
    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            conn.execute("select 1")
    except Exception as exc:
        where = "ACTORS_TEST_POSTGRES_URL" if "ACTORS_TEST_POSTGRES_URL" in os.environ else (
            "the default address (set ACTORS_TEST_POSTGRES_URL to point elsewhere)")
        return None, f"no PostgreSQL server answers at {where}: {exc}".strip()
    return url, ""


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """The PostgreSQL server's URL, or a skip that says why there is none."""
    url, reason = _postgres_reason()
    if url is None:
        if os.environ.get("ACTORS_REQUIRE_POSTGRES"):
            pytest.fail(f"ACTORS_REQUIRE_POSTGRES is set but {reason}")
        pytest.skip(reason)
    yield url
