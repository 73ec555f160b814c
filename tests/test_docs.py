"""Every ```python block in docs/ runs, standalone, as the reader would paste it.

A block may use top-level ``await`` and ``async with``; it then runs under ``trio.run``.
"""

from __future__ import annotations

import ast
import inspect
import os
import re
from pathlib import Path

import pytest
import trio

DOCS = Path(__file__).parent.parent / "docs"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def blocks() -> list[tuple[str, str]]:
    found = []
    for page in sorted(DOCS.glob("**/*.md")):
        for n, match in enumerate(BLOCK.finditer(page.read_text()), start=1):
            found.append((f"{page.relative_to(DOCS)}#{n}", match.group(1)))
    return found


def run_block(source: str, name: str) -> None:
    code = compile(source, name, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT,
                   dont_inherit=True)
    namespace: dict[str, object] = {"__name__": "__docs__"}
    if code.co_flags & inspect.CO_COROUTINE:
        async def main() -> None:
            await eval(code, namespace)

        trio.run(main)
    else:
        exec(code, namespace)


@pytest.mark.parametrize(("name", "source"), blocks(), ids=[name for name, _ in blocks()])
def test_docs_example_runs(name: str, source: str, tmp_path: Path,
                           monkeypatch: pytest.MonkeyPatch) -> None:
    if "ACTORS_TEST_POSTGRES_URL" in source and not os.environ.get("ACTORS_TEST_POSTGRES_URL"):
        from postgres_server import postgres_reason

        url, reason = postgres_reason()
        if url is None:
            pytest.skip(reason)
    monkeypatch.chdir(tmp_path)
    run_block(source, name)


def test_docs_have_examples() -> None:
    assert blocks(), "docs/ should hold runnable ```python examples"
