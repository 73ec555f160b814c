"""The public surface: ``__all__`` lists every public name once, and nothing private leaks."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

import actors
import eventstore

ROOT = Path(__file__).parent.parent


@pytest.mark.parametrize("package", [actors, eventstore], ids=lambda p: p.__name__)
def test_all_lists_every_public_name_once(package: object) -> None:
    exported = package.__all__  # type: ignore[attr-defined]
    assert len(exported) == len(set(exported))
    public = {name for name in vars(package) if not name.startswith("_")}
    modules = {name for name in public
               if type(getattr(package, name)).__name__ == "module"}
    assert set(exported) == public - modules | (modules & set(exported))
    for name in exported:
        assert getattr(package, name) is not None


@pytest.mark.parametrize("package", ["actors", "eventstore"])
def test_py_typed_is_shipped(package: str) -> None:
    assert (ROOT / package / "py.typed").exists()


def test_eventstore_never_imports_actors() -> None:
    for path in (ROOT / "eventstore").rglob("*.py"):
        text = path.read_text()
        assert "import actors" not in text and "from actors" not in text, path


@pytest.mark.parametrize("module", ["eventstore.memory", "eventstore.sqlite",
                                    "eventstore.testing", "actors.durable", "actors.otel"])
def test_public_submodules_import(module: str) -> None:
    importlib.import_module(module)
