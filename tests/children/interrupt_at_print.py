"""Run a sample as ``__main__`` and stop it mid-way until Ctrl-C arrives.

    python interrupt_at_print.py N SCRIPT [ARGS...]

The N-th ``print`` of SCRIPT prints its line, then ``<ready for Ctrl-C>`` and blocks, so a test
can send SIGINT while the program is inside its nurseries, however fast it would otherwise end.
"""

from __future__ import annotations

import builtins
import runpy
import sys
import time
from pathlib import Path

STOP_AT = int(sys.argv[1])
calls = 0
real_print = builtins.print


def print_then_wait(*args: object, **kwargs: object) -> None:
    global calls
    real_print(*args, **kwargs)  # type: ignore[call-overload]
    calls += 1
    if calls == STOP_AT:
        real_print("<ready for Ctrl-C>", flush=True)
        time.sleep(120)  # the test's SIGINT raises KeyboardInterrupt in here


builtins.print = print_then_wait
sys.argv = sys.argv[2:]
sys.path.insert(0, str(Path(sys.argv[0]).parent))  # as ``python SCRIPT`` would
runpy.run_path(sys.argv[0], run_name="__main__")
