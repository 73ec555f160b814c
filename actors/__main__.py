"""``python -m actors``: inspect, replay, export, import and check actor logs (see ``--help``)."""

from ._cli import main

if __name__ == "__main__":
    raise SystemExit(main())
