"""The turn being executed: a context variable the runtime sets and durable time reads."""

from __future__ import annotations

import uuid
from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._cell import Cell


class Turn:
    """One execution of a scope: a message, a wake-up, ``on_start`` or the ``run()`` body.

    ``calls`` counts the durable calls made so far, so the n-th call meets the n-th record.
    """

    __slots__ = ("_scope", "calls", "cell", "message_id")

    def __init__(self, cell: Cell, *, scope: str | None = None,
                 message_id: str | None = None) -> None:
        self.cell = cell
        self._scope = scope
        self.message_id = message_id
        self.calls = 0

    @property
    def scope(self) -> str:
        """The scope's name, made on first use for a message sent without a message id."""
        if self._scope is None:
            self._scope = f"msg:{self.message_id or uuid.uuid4().hex}"
        return self._scope

    @property
    def has_scope(self) -> bool:
        return self._scope is not None


current_turn: ContextVar[Turn | None] = ContextVar("actors_current_turn", default=None)
