"""The durable-call record: what each unfinished scope recorded, as a projection of the log.

For every scope (``run``, a message id, a wake-up) that has not completed, it holds the scope's
durable calls (``durable.time/now/sleep``) in order, per task of the scope (its *branch*), and the
user events the scope committed at its commit points, by the place they were emitted at. A scope
that runs again (``run()`` after a restart, a redelivered message) meets its n-th durable call
with the n-th recorded one, and its emits with the events it already committed, so it neither
records a value twice nor appends an event twice. Scopes are dropped when they complete.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from eventstore import Codec

from ._events import (
    CallReplied,
    PatchMarked,
    ScopeCompleted,
    SleepStarted,
    StepRecorded,
    TimeObserved,
)
from ._turn import CANCEL, DUE, ONCE

Recorded = TimeObserved | SleepStarted | StepRecorded | PatchMarked | CallReplied
Branch = tuple[int, ...]
"""A task of a scope: () for the scope's own task, (k,) for the k-th task it started, ..."""


class ScopeRecord:
    """One unfinished scope: its durable calls per branch, its committed events per place, and
    what its ``due()`` (a wake-up's) and ``cancel()`` calls took per place, in order."""

    __slots__ = ("calls", "cancels", "events", "fired")

    def __init__(self) -> None:
        self.calls: dict[Branch, list[Recorded]] = {}
        self.events: dict[tuple[Branch, int], list[Any]] = {}
        self.fired: dict[tuple[Branch, int], list[tuple[int, ...]]] = {}
        self.cancels: dict[tuple[Branch, int], list[tuple[int, ...]]] = {}

    def taken(self, kind: str) -> dict[tuple[Branch, int], list[tuple[int, ...]]]:
        """What the scope's notifier calls of ``kind`` (``DUE``, ``CANCEL``) took, per place."""
        return self.fired if kind == DUE else self.cancels

    def continues_after(self, branch: Branch, calls: int) -> bool:
        """Whether the branch's recorded history goes on past its ``calls``-th durable call."""
        if len(self.calls.get(branch, ())) > calls:
            return True
        return any(b == branch and n > calls
                   for places in (self.events, self.fired, self.cancels) for b, n in places)


class DurableRecord:
    """Recorded durable calls and committed events of every unfinished scope."""

    __slots__ = ("scopes",)

    def __init__(self) -> None:
        self.scopes: dict[str, ScopeRecord] = {}

    def apply(self, event: Recorded | ScopeCompleted) -> None:
        if isinstance(event, ScopeCompleted):
            self.scopes.pop(event.scope, None)
            return
        if event.scope == ONCE:
            return  # a message without an id: it never runs again
        scope = self.scopes.get(event.scope)
        if scope is None:
            scope = self.scopes[event.scope] = ScopeRecord()
        calls = scope.calls.setdefault(event.branch, [])
        if event.index == len(calls) + 1:
            calls.append(event)

    def add_event(self, scope: str, mark: tuple[int, ...], event: Any) -> None:
        """Record that ``scope`` committed ``event`` at ``mark`` (``(*branch, calls)``)."""
        record = self.scopes.get(scope)
        if record is None:
            record = self.scopes[scope] = ScopeRecord()
        record.events.setdefault((mark[:-1], mark[-1]), []).append(event)

    def add_taken(self, scope: str, kind: str,
                  taken: Iterable[tuple[Iterable[int], Iterable[int]]]) -> None:
        """Record what more of ``scope``'s notifier calls of ``kind`` took (``due()`` handed
        out, ``cancel()`` removed): ``(mark, seqs)`` pairs in order, ``mark`` being
        ``(*branch, calls)``, ``seqs`` empty for a call that took nothing."""
        record = self.scopes.get(scope)
        if record is None:
            record = self.scopes[scope] = ScopeRecord()
        places = record.taken(kind)
        for mark, seqs in taken:
            at = tuple(mark)
            places.setdefault((at[:-1], at[-1]), []).append(tuple(seqs))

    def get(self, scope: str, index: int, branch: Branch = ()) -> Recorded | None:
        record = self.scopes.get(scope)
        calls = None if record is None else record.calls.get(branch)
        if calls is None or index > len(calls):
            return None
        return calls[index - 1]

    def has(self, scope: str) -> bool:
        return scope in self.scopes

    def calls(self) -> Iterator[list[Recorded]]:
        """Each branch's recorded calls, in order, for every unfinished scope."""
        for record in self.scopes.values():
            yield from record.calls.values()

    def dump(self, codec: Codec) -> list[dict[str, Any]]:
        """The record as a snapshot holds it. Scopes go in name order: a record loaded from a
        snapshot meets its scopes in another order than the log did, and must dump the same."""
        scopes = [(scope, self.scopes[scope]) for scope in sorted(self.scopes)]
        out: list[dict[str, Any]] = []
        for _, record in scopes:
            for calls in record.calls.values():
                for call in calls:
                    item: dict[str, Any]
                    if isinstance(call, TimeObserved):
                        item = {"kind": "time", "scope": call.scope, "index": call.index,
                                "function": call.function, "value": call.value}
                    elif isinstance(call, SleepStarted):
                        item = {"kind": "sleep", "scope": call.scope, "index": call.index,
                                "started_at": call.started_at, "seconds": call.seconds}
                    else:
                        out.append({"kind": "call", "call": codec.encode_value(call)})
                        continue
                    if call.branch:
                        item["branch"] = list(call.branch)
                    out.append(item)
        for scope, record in scopes:
            for (branch, calls_before), events in record.events.items():
                out.extend({"kind": "event", "scope": scope, "mark": [*branch, calls_before],
                            "event": codec.encode_value(event)} for event in events)
            for kind, item_kind in ((DUE, "fired"), (CANCEL, "cancelled")):
                for (branch, calls_before), taken in record.taken(kind).items():
                    out.extend({"kind": item_kind, "scope": scope,
                                "mark": [*branch, calls_before], "seqs": list(seqs)}
                               for seqs in taken)
        return out

    @classmethod
    def load(cls, data: list[dict[str, Any]], codec: Codec) -> DurableRecord:
        record = cls()
        for item in data:
            kind = item["kind"]
            branch = tuple(item.get("branch", ()))
            if kind == "time":
                record.apply(TimeObserved(item["scope"], item["index"], item["function"],
                                          item["value"], branch))
            elif kind == "sleep":
                record.apply(SleepStarted(item["scope"], item["index"], item["started_at"],
                                          item["seconds"], branch))
            elif kind == "call":
                record.apply(codec.decode_value(item["call"]))
            elif kind == "event":
                record.add_event(item["scope"], tuple(item["mark"]),
                                 codec.decode_value(item["event"]))
            elif kind in ("fired", "cancelled"):
                record.add_taken(item["scope"], DUE if kind == "fired" else CANCEL,
                                 [(item["mark"], item["seqs"])])
            else:
                raise ValueError(f"unknown durable record item {kind!r}")
        return record
