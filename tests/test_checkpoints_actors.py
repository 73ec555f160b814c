"""Every public async function of ``actors`` is a checkpoint, on every path, on every store.

A checkpoint is a property of the code, not of the state (trio's ``design.rst``): an ask of an
actor that answers at once, a stop of a stopped actor, an empty replay all checkpoint.
"""

from __future__ import annotations

import io
from typing import Any

import attrs
import trio
import trio.testing
from trio.testing import assert_checkpoints

import actors
import eventstore
from actors import durable, replay
from actors.testing import ActorTestKit


@eventstore.event_type("tests.checkpoints.Noted")
@attrs.frozen
class Noted:
    n: int


@attrs.define
class Notes(actors.Actor):
    kind = "Notes"
    total: int = 0

    def apply(self, event: Any) -> None:
        self.total += event.n

    async def receive(self, message: Any) -> Any:
        if message == "flush":
            self.emit(Noted(1))
            with assert_checkpoints():
                await self.flush()
            with assert_checkpoints():
                await self.flush()  # nothing pending: still a checkpoint
        elif message == "durable":
            with assert_checkpoints():
                await durable.time.aio()
            with assert_checkpoints():
                await durable.now.aio()
            with assert_checkpoints():
                await durable.sleep.aio(0)
            with assert_checkpoints():
                await durable.sleep.aio(0.001)
        elif isinstance(message, int):
            self.emit(Noted(message))
        return self.total


async def test_actor_functions_checkpoint(any_store: eventstore.EventStore) -> None:
    async with trio.open_nursery() as nursery:
        with assert_checkpoints():
            ref = await actors.spawn(nursery, Notes, "n", store=any_store)
        with assert_checkpoints():
            await ref.ask("nothing")  # emits nothing, answers at once
        with assert_checkpoints():
            await ref.ask(1)
        assert await ref.ask("flush") == 2
        assert await ref.ask("durable") == 2
        with assert_checkpoints():
            await ref.stop()
        with assert_checkpoints():
            await ref.stop()  # already stopped
    with assert_checkpoints():
        await replay.state_at(any_store, Notes, "n")
    with assert_checkpoints():
        await replay.state_at(any_store, Notes, "empty")
    with assert_checkpoints():
        await replay.check(any_store, Notes, "n")
    with assert_checkpoints():
        await replay.check(any_store, Notes, "empty")
    with assert_checkpoints():
        await replay.export_jsonl(any_store, "Notes-empty", io.StringIO())
    with assert_checkpoints():
        await replay.import_jsonl(any_store, [])
    steps = replay.steps(any_store, Notes, "empty")
    with assert_checkpoints():
        async for _ in steps:
            pass


async def test_system_and_kit_functions_checkpoint(any_store: eventstore.EventStore) -> None:
    with assert_checkpoints():
        async with actors.ActorSystem(any_store, actors=[Notes]):
            pass
    async with actors.ActorSystem(any_store, actors=[Notes]) as system:
        with assert_checkpoints():
            await system.spawn(Notes, "s")
        with assert_checkpoints():
            await system.ref(Notes, "s").ask("nothing")
        with assert_checkpoints():
            await system.ref(Notes, "passive").stop()  # never activated
        with assert_checkpoints():
            await system.shutdown()
        with assert_checkpoints():
            await system.shutdown()  # nothing left to stop

    with assert_checkpoints():
        async with ActorTestKit(store=any_store):
            pass
    async with ActorTestKit(store=any_store) as kit:
        with assert_checkpoints():
            ref = await kit.spawn(Notes, "k")
        with assert_checkpoints():
            await kit.events(ref)
        with assert_checkpoints():
            await kit.given(ref, Noted(3))
        with assert_checkpoints():
            await kit.crash(ref)
        with assert_checkpoints():
            await kit.recover(ref)
