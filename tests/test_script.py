"""The running script's module name, and the type names of the classes it defines (in process,
with a stand-in ``__main__``; ``test_script_names.py`` runs real scripts)."""

from __future__ import annotations

import enum
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

from eventstore import (
    Codec,
    DecodeError,
    InvalidArgument,
    RecordedEvent,
    SerializationError,
    event_type,
)
from eventstore._script import script_module

SOURCE = """
import enum
import attrs
from eventstore import event_type

@attrs.frozen
class Deposited:
    cents: int

@attrs.frozen
class Ledger:
    last: Deposited

class Color(enum.Enum):
    RED = "red"
"""


def module(name: str, *, file: str | None = None, spec: str | None = None,
           source: str = SOURCE) -> ModuleType:
    """A module called ``name`` that ran ``source`` (so its classes have ``__module__ == name``)."""
    made = ModuleType(name)
    if file is not None:
        made.__file__ = file
    made.__spec__ = None if spec is None else SimpleNamespace(name=spec)  # type: ignore[assignment]
    exec(source, made.__dict__)
    return made


@pytest.fixture
def run_as(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Make a module the running ``__main__``."""
    def install(main: ModuleType) -> ModuleType:
        monkeypatch.setitem(sys.modules, "__main__", main)
        return main
    return install


@pytest.fixture
def script(run_as: Any, tmp_path: Path) -> ModuleType:
    """``python shop_app.py``; the file does not even exist, so nothing can import it."""
    return run_as(module("__main__", file=str(tmp_path / "shop_app.py")))


def recorded(kind: str, data: Any) -> RecordedEvent:
    return RecordedEvent(stream="s", version=1, position=1, type=kind, data=data, metadata={},
                         id=uuid.uuid4(), recorded_at=datetime.now(UTC))


@pytest.mark.parametrize(("file", "spec", "expected"), [
    ("/srv/shop_app.py", None, "shop_app"),                  # python /srv/shop_app.py
    ("/srv/shop/app.py", "shop.app", "shop.app"),            # python -m shop.app
    ("/srv/shop/__main__.py", "shop.__main__", "shop.__main__"),  # python -m shop
    ("/srv/shop/__main__.py", "__main__", None),             # python shop/ (a directory)
    ("/srv/my-app.py", None, None),                          # not a module name
    ("/srv/class.py", None, None),                           # a keyword
    ("/srv/app", None, None),                                # no .py: not importable
    (None, None, None),                                      # python -c, a REPL, a notebook
])
def test_the_scripts_module_name(run_as: Any, file: str | None, spec: str | None,
                                 expected: str | None) -> None:
    run_as(module("__main__", file=file, spec=spec, source=""))
    assert script_module() == expected


def test_a_scripts_classes_are_named_after_its_file(script: ModuleType) -> None:
    codec = Codec()
    new = codec.new_event(script.Deposited(5))
    assert new.type == "shop_app:Deposited"
    assert codec.decode(recorded(new.type, new.data)) == script.Deposited(5)
    assert "shop_app" not in sys.modules  # found in __main__, the file was not imported again
    # What the script stored before names were portable still decodes in the script:
    assert Codec().decode(recorded("__main__:Deposited", {"cents": 1})) == script.Deposited(1)


def test_a_scripts_values_are_named_after_its_file(script: ModuleType) -> None:
    codec = Codec()
    value = (script.Ledger(script.Deposited(1)), script.Color.RED)
    data = codec.encode_value(value)
    assert data == {"$tuple": [{"$attrs": ["shop_app:Ledger", 1, {"last": {"cents": 1}}]},
                               {"$enum": ["shop_app:Color", "red"]}]}
    assert Codec().decode_value(data) == value


def test_a_spawned_multiprocessing_child_names_the_parents_classes_alike(
        run_as: Any, tmp_path: Path) -> None:
    child = run_as(module("__mp_main__", file=str(tmp_path / "shop_app.py")))
    assert Codec().new_event(child.Deposited(5)).type == "shop_app:Deposited"


def test_a_class_of_an_interactive_session_is_stored_with_a_warning(run_as: Any) -> None:
    main = run_as(module("__main__"))
    codec = Codec()
    with pytest.warns(UserWarning, match="only this program can decode its events"):
        assert codec.type_name(main.Deposited) == "__main__:Deposited"
    with pytest.warns(UserWarning, match="Ledger is stored as '__main__:Ledger'"):
        event_type()(main.Ledger)


# -- the script that imports itself ----------------------------------------------------------------


@pytest.fixture
def imported_again(script: ModuleType, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The script's file imported a second time, as ``shop_app``."""
    again = module("shop_app", file=script.__file__)
    monkeypatch.setitem(sys.modules, "shop_app", again)
    return again


TWICE = "Deposited is defined twice: .*shop_app.py runs as __main__, and was imported a second " \
        "time as module 'shop_app'"


def test_encoding_either_copy_names_the_double_import(script: ModuleType,
                                                      imported_again: ModuleType) -> None:
    for copy in (script, imported_again):
        with pytest.raises(SerializationError, match=TWICE):
            Codec().new_event(copy.Deposited(1))
    with pytest.raises(SerializationError, match="Color is defined twice"):
        Codec().encode_value(script.Color.RED)


def test_decoding_names_the_double_import(script: ModuleType, imported_again: ModuleType) -> None:
    for name in ("shop_app:Deposited", "__main__:Deposited"):
        with pytest.raises(DecodeError, match=TWICE):
            Codec().decode(recorded(name, {"cents": 1}))


def test_a_named_event_type_defined_twice_names_the_double_import(
        script: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    named = SOURCE.replace("@attrs.frozen\nclass Deposited",
                           "@event_type('test_script.Deposited')\n@attrs.frozen\nclass Deposited")
    run_again = module("__main__", file=script.__file__, source=named)
    monkeypatch.setitem(sys.modules, "__main__", run_again)
    monkeypatch.setitem(sys.modules, "shop_app", ModuleType("shop_app"))
    with pytest.raises(InvalidArgument, match=TWICE) as raised:
        exec(named, sys.modules["shop_app"].__dict__)
    assert "choose another name" not in str(raised.value)


def test_one_class_reachable_from_both_copies_is_no_double_import(
        script: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    again = ModuleType("shop_app")
    again.Deposited = script.Deposited  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "shop_app", again)
    assert Codec().new_event(script.Deposited(1)).type == "shop_app:Deposited"


# -- reading old __main__: names elsewhere ---------------------------------------------------------


class Level(enum.Enum):
    LOW = 1


def test_alias_module_reads_main_names_from_a_module() -> None:
    import test_codec
    from test_codec import Point

    codec = Codec()
    old = recorded("__main__:Point", {"x": 1, "y": 2})
    value = {"$tuple": [{"$attrs": ["__main__:Point", 1, {"x": 1, "y": 2}]},
                        {"$enum": ["__main__:Level", 1]}]}
    with pytest.raises(DecodeError, match="no event class has this name"):
        codec.decode(old)
    codec.alias_module("__main__", "test_codec")
    assert codec.decode(old) == Point(1, 2)
    assert codec.new_event(Point(1, 2)).type == "test_codec:Point"  # new events: the real name
    assert codec.decode_value(value) == (Point(1, 2), test_codec.Level.LOW)
    codec.alias_module("__main__", __name__)  # replaces the first alias
    with pytest.raises(DecodeError, match="no event class has this name"):
        codec.decode(old)
    assert codec.decode_value({"$enum": ["__main__:Level", 1]}) == Level.LOW


@pytest.mark.parametrize(("old", "new", "message"), [
    ("", "app", "old must be a dotted module name"),
    ("__main__", "app:X", "new must be a dotted module name"),
    ("__main__", None, "new must be a dotted module name"),
    ("app", "app", "got the module 'app' twice"),
])
def test_alias_module_refuses_what_is_not_a_module(old: Any, new: Any, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        Codec().alias_module(old, new)
