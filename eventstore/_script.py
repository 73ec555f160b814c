"""The running script's importable module name, so classes it defines get portable type names.

A class defined in a program run as ``python app.py`` has ``__module__ == "__main__"``; another
program (the CLI, a service that imports ``app``) finds it as ``app``. Under ``python -m pkg.app``
the name is ``__spec__.name``. Resolving the script's own name inside the script looks it up in
``__main__``, never imports the file a second time.
"""

from __future__ import annotations

import keyword
import os
import sys
from types import ModuleType
from typing import Any, Final

MAIN: Final = "__main__"
MAINS: Final = frozenset({MAIN, "__mp_main__"})
"""The module names of a running script: ``__mp_main__`` in a multiprocessing spawned child."""


def script_module() -> str | None:
    """The name the running script's module can be imported by, or None.

    ``__spec__.name`` under ``python -m``, else the stem of ``__main__.__file__``; None in an
    interactive session, under ``python -c``, or when the file's stem is not a module name.
    """
    main = sys.modules.get(MAIN)
    spec = getattr(main, "__spec__", None)
    name = getattr(spec, "name", None)
    if isinstance(name, str) and name and name != MAIN:
        return name
    path = getattr(main, "__file__", None)
    if not isinstance(path, str) or not path:
        return None
    stem, extension = os.path.splitext(os.path.basename(path))
    if extension != ".py" or not stem.isidentifier() or keyword.iskeyword(stem) or stem == MAIN:
        return None
    return stem


def portable_module(module: str) -> str:
    """``module``, with ``__main__`` replaced by the script's importable name when it has one."""
    if module in MAINS:
        return script_module() or module
    return module


def script_file() -> str:
    """The running script's file, for messages."""
    return str(getattr(sys.modules.get(MAIN), "__file__", None) or "the script")


def main_module_as(module: str) -> ModuleType | None:
    """The ``__main__`` module, if it is the script importable as ``module`` and ``module`` is
    not imported (a lookup of the script's own name must not run the file again)."""
    if module != script_module() or module in sys.modules:
        return None
    return sys.modules.get(MAIN)


def attribute(module: Any, qualname: str) -> Any:
    """The object at dotted ``qualname`` in ``module``, or None."""
    found = module
    for part in qualname.split("."):
        found = getattr(found, part, None)
    return found


def double_import(module: str, qualname: str, found: object) -> str | None:
    """A message if ``found`` (``module:qualname``) exists twice: once in the running script
    (``__main__``) and once in the module ``module`` that imported the script file again."""
    script = script_module()
    if script is None or (module not in MAINS and module != script):
        return None
    main, again = sys.modules.get(MAIN), sys.modules.get(script)
    if main is None or again is None or main is again:
        return None
    other = attribute(again if module in MAINS else main, qualname)
    if other is None or other is found:
        return None
    return double_import_message(script, qualname)


def double_import_message(script: str, qualname: str) -> str:
    """What is wrong when the script ``script`` is imported a second time, and what to do."""
    return (
        f"{qualname} is defined twice: {script_file()} runs as __main__, and was imported a "
        f"second time as module {script!r} (by `import {script}` in the script or in a module "
        f"it imports), so {MAIN}.{qualname} and {script}.{qualname} are different classes "
        f"and an event of one is not an instance of the other. Move {qualname} (and the code "
        f"that imports it) into a module of its own, imported by both, and keep {script_file()} "
        "as the entry point that nothing imports"
    )
