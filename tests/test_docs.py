"""Every ```python block in docs/ runs, standalone, as the reader would paste it.

A block may use top-level ``await`` and ``async with``; it then runs under ``trio.run``.
Pages include code from the repository with the pymdownx.snippets syntax that MkDocs renders
(``--8<-- "samples/bank.py"`` or ``--8<-- "samples/bank.py:section"``); the includes are resolved
here the same way, so the blocks that run are the ones the reader sees. A block that includes a
sample runs as that sample's module (its classes keep their names, as when the sample is imported).
"""

from __future__ import annotations

import ast
import inspect
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import trio

ROOT = Path(__file__).parent.parent
DOCS = ROOT / "docs"
SAMPLES = ROOT / "samples"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
INCLUDE = re.compile(r'^--8<-- "([^":]+)(?::([\w-]+))?"$', re.MULTILINE)
MARKER = re.compile(r"^\s*# --8<-- \[(start|end):([\w-]+)\]\s*$")


def snippet(path: str, section: str | None, page: Path) -> str:
    """The text that ``--8<-- "path:section"`` stands for, without section markers."""
    file = ROOT / path
    if not file.is_file():
        raise AssertionError(f"{page.name} includes {path!r}, which does not exist (paths are "
                             "relative to the repository root)")
    lines = file.read_text().splitlines()
    if section is not None:
        try:
            start = lines.index(f"# --8<-- [start:{section}]")
            end = lines.index(f"# --8<-- [end:{section}]", start)
        except ValueError:
            raise AssertionError(f"{page.name} includes section {section!r} of {path}, which has "
                                 f"no '# --8<-- [start:{section}]' ... [end:...] markers") from None
        lines = lines[start + 1:end]
    return "\n".join(line for line in lines if not MARKER.match(line))


def resolve(page: Path) -> str:
    """The page's text with every include replaced by the lines it names."""
    return INCLUDE.sub(lambda m: snippet(m[1], m[2], page), page.read_text())


def blocks() -> list[tuple[str, str, str]]:
    """(name, module name to run as, source) of every ```python block."""
    found = []
    for page in sorted(DOCS.glob("**/*.md")):
        raw = [m.group(1) for m in BLOCK.finditer(page.read_text())]
        for n, (shown, source) in enumerate(zip(raw, BLOCK.findall(resolve(page)), strict=True),
                                            start=1):
            sample = INCLUDE.search(shown)
            module = Path(sample[1]).stem if sample else "__docs__"
            found.append((f"{page.relative_to(DOCS)}#{n}", module, source))
    return found


def run_block(source: str, name: str, module: str = "__docs__") -> None:
    code = compile(source, name, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT,
                   dont_inherit=True)
    namespace: dict[str, object] = {"__name__": module}
    if code.co_flags & inspect.CO_COROUTINE:
        async def main() -> None:
            await eval(code, namespace)

        trio.run(main)
    else:
        exec(code, namespace)


@pytest.mark.parametrize(("name", "module", "source"), blocks(),
                         ids=[name for name, _, _ in blocks()])
def test_docs_example_runs(name: str, module: str, source: str, tmp_path: Path,
                           monkeypatch: pytest.MonkeyPatch) -> None:
    if "ACTORS_TEST_POSTGRES_URL" in source and not os.environ.get("ACTORS_TEST_POSTGRES_URL"):
        from postgres_server import postgres_reason

        url, reason = postgres_reason()
        if url is None:
            pytest.skip(reason)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(SAMPLES))  # a sample imports its neighbours, as under python
    log = logging.getLogger("actors")
    level = log.level
    try:
        run_block(source, name, module)
    finally:
        log.setLevel(level)  # a block that quiets the runtime's log must not quiet later tests


def test_docs_have_examples() -> None:
    assert blocks(), "docs/ should hold runnable ```python examples"


def test_includes_resolve_like_snippets(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text('```python\n--8<-- "samples/bank.py:imports"\n```\n'
                    '--8<-- "samples/tutorial_step_1.py"\n')
    text = resolve(page)
    assert "--8<--" not in text
    assert "from eventstore.sqlite import SQLiteEventStore\n\n```" in text
    assert text.endswith("actors.run_program(main)\n")
    page.write_text('--8<-- "samples/bank.py:nowhere"\n')
    with pytest.raises(AssertionError, match=r"section 'nowhere' of samples/bank\.py"):
        resolve(page)
    page.write_text('--8<-- "samples/gone.py"\n')
    with pytest.raises(AssertionError, match=r"'samples/gone\.py', which does not exist"):
        resolve(page)


def test_the_testing_page_configuration_runs_its_pytest_example(tmp_path: Path) -> None:
    """A project set up as docs/testing.md says runs the page's ``actor_kit`` test with pytest."""
    page = (DOCS / "testing.md").read_text()
    config = re.search(r"^```toml\n(.*?)^```", page, re.DOTALL | re.MULTILINE)
    assert config and page.index("trio_mode") < page.index("```python"), \
        "testing.md shows the pytest configuration before its first example"
    example = next(source for name, _, source in blocks()
                   if name.startswith("testing.md") and "async def test_" in source)
    (tmp_path / "pyproject.toml").write_text(config[1])
    (tmp_path / "test_example.py").write_text(example)
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "test_example.py"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert " passed" in done.stdout and "skipped" not in done.stdout, done.stdout


def test_every_page_is_in_the_site_navigation() -> None:
    """mkdocs.yml lists every page (``mkdocs build --strict`` in CI refuses one left out)."""
    listed = set(re.findall(r":\s*([\w./-]+\.md)\s*$", (ROOT / "mkdocs.yml").read_text(),
                            re.MULTILINE))
    pages = {str(page.relative_to(DOCS)) for page in DOCS.glob("**/*.md")}
    assert pages - listed == set(), "add these pages to the nav in mkdocs.yml"
    assert listed - pages == set(), "mkdocs.yml lists pages that do not exist"
