"""What happens when an actor's ``run()`` body raises: restart (default), stop, or escalate."""

from __future__ import annotations

import attrs

from ._errors import InvalidActorArgument


def _positive(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise InvalidActorArgument(f"{attribute.name} must be a positive number of seconds, "
                                   f"got {value!r}")


@attrs.frozen
class Restart:
    """Run ``run()`` again after ``initial_backoff`` s, doubling up to ``max_backoff``.

    After ``max_restarts`` failures in a row (None: no limit) the actor stops instead.
    """

    initial_backoff: float = attrs.field(default=0.1, validator=_positive)
    max_backoff: float = attrs.field(default=30.0, validator=_positive)
    max_restarts: int | None = None

    def backoff(self, failures: int) -> float:
        # The exponent is capped: 2 ** n for n past ~1000 no longer converts to a float.
        return float(min(self.max_backoff, self.initial_backoff * 2.0 ** min(failures - 1, 64)))


@attrs.frozen
class Stop:
    """Stop the actor when ``run()`` raises; its log keeps what was committed."""


@attrs.frozen
class Escalate:
    """Re-raise ``run()``'s exception into the nursery the actor was spawned in (trio style)."""


Supervision = Restart | Stop | Escalate
