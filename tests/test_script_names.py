"""Logs written by a script stay readable: portable default type names, old ``__main__:`` logs,
and the script that imports itself. Real programs, run as ``python app.py``, on real SQLite files.
"""

from __future__ import annotations

import importlib
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from actors import replay
from eventstore import DecodeError
from eventstore.sqlite import SQLiteEventStore

SCRIPT = Path(__file__).parent / "scripts" / "counter_app.py"
STREAM = "counter-c1"


def python(cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *argv], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


def cli(cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return python(cwd, "-m", "actors", *argv)


def stored(db: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT types.name, data FROM events JOIN types "
                            "ON types.id = events.type WHERE stream = ? ORDER BY version",
                            (STREAM,)).fetchall()


def make_legacy(db: Path, module: str) -> None:
    """Rewrite ``db`` as the script wrote it before default names were portable."""
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE types SET name = replace(name, ?, '__main__:')", (f"{module}:",))
        conn.execute("UPDATE events SET data = replace(data, ?, '\"__main__:')",
                     (f'"{module}:',))


@pytest.fixture
def app(tmp_path: Path) -> Path:
    """A directory holding the script ``counter_app.py`` and, after one run, its log app.db."""
    shutil.copy(SCRIPT, tmp_path / "counter_app.py")
    done = python(tmp_path, "counter_app.py", "app.db")
    assert (done.returncode, done.stdout, done.stderr) == (0, "3\n", "")
    return tmp_path


def test_a_script_stores_its_classes_under_the_file_name(app: Path) -> None:
    rows = stored(app / "app.db")
    types = {kind for kind, _ in rows}
    assert "counter_app:Added" in types
    assert not any("__main__" in kind or "__main__" in data for kind, data in rows)
    assert any('"counter_app:Remind"' in data for _, data in rows)  # an attrs value (a token)


def test_the_cli_replays_a_log_written_by_a_script(app: Path) -> None:
    done = cli(app, "replay", "sqlite:///app.db", STREAM, "--actor", "counter_app:Counter")
    assert (done.returncode, done.stderr) == (0, "")
    assert "counter_app:Added" in done.stdout and '"total": 3' in done.stdout


def test_a_module_run_with_dash_m_is_stored_under_its_module_name(tmp_path: Path) -> None:
    (tmp_path / "shop").mkdir()
    (tmp_path / "shop" / "__init__.py").write_text("")
    shutil.copy(SCRIPT, tmp_path / "shop" / "counter_app.py")
    done = python(tmp_path, "-m", "shop.counter_app", "app.db")
    assert (done.returncode, done.stderr) == (0, "")
    assert "shop.counter_app:Added" in {kind for kind, _ in stored(tmp_path / "app.db")}
    done = cli(tmp_path, "replay", "sqlite:///app.db", STREAM, "--actor",
               "shop.counter_app:Counter", "--json")
    assert (done.returncode, done.stderr) == (0, "")
    assert '"total": 3' in done.stdout


# -- logs that already hold __main__: names ------------------------------------------------------


def test_the_cli_reads_main_names_from_the_actors_module(app: Path) -> None:
    make_legacy(app / "app.db", "counter_app")
    assert "__main__:Added" in {kind for kind, _ in stored(app / "app.db")}
    done = cli(app, "replay", "sqlite:///app.db", STREAM, "--actor", "counter_app:Counter")
    assert (done.returncode, done.stderr) == (0, "")
    assert "__main__:Added" in done.stdout and '"total": 3' in done.stdout

    done = cli(app, "export", "sqlite:///app.db", STREAM, "-o", "log.jsonl")
    assert done.returncode == 0, done.stderr
    done = cli(app, "check", "--actor", "counter_app:Counter", "log.jsonl")
    assert (done.returncode, done.stderr) == (0, ""), done.stdout
    assert f"{STREAM}: ok" in done.stdout

    refused = cli(app, "import", "sqlite:///copy.db", "log.jsonl")
    assert refused.returncode == 2 and "'__main__:Added'" in refused.stderr
    done = cli(app, "import", "-m", "counter_app", "sqlite:///copy.db", "log.jsonl")
    assert (done.returncode, done.stderr) == (0, "")


def test_the_script_itself_goes_on_from_its_old_main_names(app: Path) -> None:
    make_legacy(app / "app.db", "counter_app")
    done = python(app, "counter_app.py", "app.db")
    assert (done.returncode, done.stdout, done.stderr) == (0, "6\n", "")
    types = [kind for kind, _ in stored(app / "app.db")]
    assert "__main__:Added" in types and "counter_app:Added" in types


@pytest.fixture
def counter_app(app: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """The script imported as a module, as another program would."""
    monkeypatch.syspath_prepend(str(app))
    yield importlib.import_module("counter_app")
    sys.modules.pop("counter_app", None)


async def test_a_program_reads_main_names_through_an_alias(app: Path,
                                                           counter_app: ModuleType) -> None:
    make_legacy(app / "app.db", "counter_app")
    async with SQLiteEventStore(app / "app.db") as store:
        with pytest.raises(DecodeError, match="'__main__:Added'"):
            await replay.state_at(store, counter_app.Counter, "c1")
        store.codec.alias_module("__main__", "counter_app")
        counter = await replay.state_at(store, counter_app.Counter, "c1")
        assert counter.total == 3
        tokens = [token for _, token in counter.notifier.pending()]
        assert tokens == [counter_app.Remind("check")] * 2  # one per Add


# -- the script that imports itself ----------------------------------------------------------------


def test_a_script_that_imports_itself_is_told_so(app: Path) -> None:
    done = python(app, "counter_app.py", "again.db", "--import-itself")
    assert done.returncode == 1
    assert "Added is defined twice" in done.stderr
    assert "imported a second time as module 'counter_app'" in done.stderr
    assert "choose another name" not in done.stderr
    with sqlite3.connect(app / "again.db") as conn:
        assert conn.execute("SELECT count(*) FROM events").fetchone() == (0,)
