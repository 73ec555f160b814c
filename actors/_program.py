"""``run_program``: ``trio.run`` for a program's entry point, with a one-line Ctrl-C."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar, TypeVarTuple

import trio

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

INTERRUPTED = 130  # the shell's status for a program ended by SIGINT (128 + 2)


def run_program(main: Callable[[*Ts], Awaitable[T]], *args: *Ts) -> T:
    """Run ``main(*args)`` under ``trio.run``, as the entry point of a program.

    Ctrl-C ends the program with one line on stderr and exit status 130, instead of the traceback
    of the exception groups that trio's nurseries wrap ``KeyboardInterrupt`` in. Any other error
    propagates unchanged, also when it arrives together with the interrupt.

    Returns:
        What ``main`` returned.

    Raises:
        SystemExit: with status 130 after Ctrl-C.
    """
    try:
        return trio.run(main, *args)
    except BaseException as exc:
        if not only_interrupts(exc):
            raise
    print(f"{Path(sys.argv[0]).name}: interrupted", file=sys.stderr, flush=True)
    raise SystemExit(INTERRUPTED)


def only_interrupts(exc: BaseException) -> bool:
    """Whether ``exc`` is a ``KeyboardInterrupt``, or a group holding nothing else."""
    if isinstance(exc, BaseExceptionGroup):
        return exc.split(KeyboardInterrupt)[1] is None
    return isinstance(exc, KeyboardInterrupt)
