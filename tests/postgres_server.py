"""Where the PostgreSQL server for the tests is, and why it is missing when it is."""

from __future__ import annotations

import os

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


def postgres_reason() -> tuple[str | None, str]:
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
