"""The durable-call record: what ``durable.time/now/sleep`` recorded, per scope, as a projection.

Each scope (``run``, a message id, a wake-up) holds its calls in order; the n-th durable call of
a scope's execution is checked against the n-th recorded one, so replayed code gets the recorded
values and a changed call is caught as non-determinism.
"""

from __future__ import annotations

from typing import Any

from ._events import ScopeCompleted, SleepStarted, TimeObserved

Recorded = TimeObserved | SleepStarted


class DurableRecord:
    """Recorded durable calls by scope; scopes are dropped when they complete."""

    __slots__ = ("scopes",)

    def __init__(self) -> None:
        self.scopes: dict[str, list[Recorded]] = {}

    def apply(self, event: Recorded | ScopeCompleted) -> None:
        if isinstance(event, ScopeCompleted):
            self.scopes.pop(event.scope, None)
        else:
            calls = self.scopes.setdefault(event.scope, [])
            if event.index == len(calls) + 1:
                calls.append(event)

    def get(self, scope: str, index: int) -> Recorded | None:
        calls = self.scopes.get(scope)
        if calls is None or index > len(calls):
            return None
        return calls[index - 1]

    def has(self, scope: str) -> bool:
        return scope in self.scopes

    def unfinished_sleeps(self) -> list[SleepStarted]:
        """Every recorded sleep of a scope that has not completed (the CLI lists them)."""
        return [call for calls in self.scopes.values() for call in calls
                if isinstance(call, SleepStarted)]

    def dump(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for calls in self.scopes.values():
            for call in calls:
                if isinstance(call, TimeObserved):
                    out.append({"kind": "time", "scope": call.scope, "index": call.index,
                                "function": call.function, "value": call.value})
                else:
                    out.append({"kind": "sleep", "scope": call.scope, "index": call.index,
                                "started_at": call.started_at, "seconds": call.seconds})
        return out

    @classmethod
    def load(cls, data: list[dict[str, Any]]) -> DurableRecord:
        record = cls()
        for item in data:
            if item["kind"] == "time":
                record.apply(TimeObserved(item["scope"], item["index"], item["function"],
                                          item["value"]))
            else:
                record.apply(SleepStarted(item["scope"], item["index"], item["started_at"],
                                          item["seconds"]))
        return record
