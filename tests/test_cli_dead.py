"""``python -m actors dead-letters``: list the dead letters, retry or drop one, once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import attrs
import pytest
import trio

import actors
import eventstore
from actors import DeadLettered, Received
from actors._cli import main
from actors._cli_dead import DEAD_LETTERS, dead_letters, resolve
from actors._events import DeadLetterResolved
from eventstore import EventStore


@eventstore.event_type("tests.dead.Pay")
@attrs.frozen
class Pay:
    amount: int


@eventstore.event_type("tests.dead.Paid")
@attrs.frozen
class Paid:
    amount: int


@attrs.define
class Till(actors.Actor):
    """Refuses payments over ``limit`` (a class-wide setting a fix raises)."""

    kind = "Till"
    max_deliveries = 2
    supervision = actors.Restart(initial_backoff=0.01)
    limit: ClassVar[int] = 100
    paid: list[int] = attrs.Factory(list)

    def apply(self, event: Paid) -> None:
        self.paid.append(event.amount)

    async def receive(self, message: Any) -> Any:
        if isinstance(message, Pay):
            if message.amount > Till.limit:
                raise ValueError(f"{message.amount} is over the limit")
            self.emit(Paid(message.amount))
        return self.paid


@pytest.fixture(autouse=True)
def default_limit() -> None:
    Till.limit = 100


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def fails(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    status, out, err = run(capsys, *argv)
    assert (status, out) == (2, ""), err
    assert err.count("\n") == 1 and err.startswith("actors dead-letters: error: "), err
    return err


async def _poison(store: EventStore) -> None:
    """Till-t gets 500 (with an id), 7, then 900 (without): two dead letters, seqs 1 and 3."""
    async with actors.ActorSystem(store, actors=[Till]) as system:
        ref = system.ref(Till, "t")
        await ref.send(Pay(500), message_id="pay-500")
        await ref.send(Pay(7))
        await ref.send(Pay(900))
        with trio.fail_after(10):
            while len([e async for e in store.read("Till-t")
                       if e.type == "actors.DeadLettered"]) < 2:
                await trio.sleep(0.01)
        assert await ref.ask("state") == [7]


@pytest.fixture
def db(tmp_path: Path) -> str:
    path = tmp_path / "app.db"

    async def fill() -> None:
        async with eventstore.open(f"sqlite:///{path}", create=True) as store:
            await _poison(store)

    trio.run(fill)
    return f"sqlite:///{path}"


async def _inbox(url: str, stream: str) -> list[Any]:
    async with eventstore.open(url) as store:
        return [r async for r in store.read_inbox(stream)]


def test_list_shows_each_unresolved_dead_letter(capsys: pytest.CaptureFixture[str],
                                                db: str) -> None:
    status, out, _ = run(capsys, "dead-letters", db)
    lines = out.splitlines()
    assert status == 0 and lines[0].split()[:5] == ["WHEN", "STREAM", "SEQ", "TYPE", "ATTEMPTS"]
    rows = [line.split(maxsplit=6) for line in lines[1:]]
    assert [row[1:6] for row in rows] == [["Till-t", "1", "tests.dead.Pay", "2", "pay-500"],
                                          ["Till-t", "3", "tests.dead.Pay", "2", "-"]]
    assert rows[0][6] == "ValueError: 500 is over the limit"
    out = run(capsys, "dead-letters", "--json", db)[1]
    first = json.loads(out.splitlines()[0])
    assert first | {"at": None} == {
        "stream": "Till-t", "seq": 1, "message_id": "pay-500", "type": "tests.dead.Pay",
        "data": {"amount": 500}, "error": "ValueError: 500 is over the limit", "attempts": 2,
        "at": None, "version": 1, "resolved": None}


def test_retry_stores_the_message_again_and_the_next_start_runs_it(
        capsys: pytest.CaptureFixture[str], db: str) -> None:
    status, out, _ = run(capsys, "dead-letters", "retry", db, "Till-t", "1")
    assert status == 0 and "retried dead letter 1 of 'Till-t'" in out and "next activated" in out
    [waiting] = trio.run(_inbox, db, "Till-t")
    assert (waiting.type, waiting.data, waiting.metadata) == (
        "tests.dead.Pay", {"amount": 500}, {"message_id": "pay-500"})
    out = run(capsys, "dead-letters", db)[1]
    assert [line.split()[2] for line in out.splitlines()[1:]] == ["3"]  # 1 is resolved
    out = run(capsys, "dead-letters", db, "--all")[1]
    assert out.splitlines()[1].endswith("[retried]")

    Till.limit = 1000  # the fix is deployed; the system starts again

    async def restart() -> list[Any]:
        async with eventstore.open(db) as store:
            async with actors.ActorSystem(store, actors=[Till]) as system:
                ref = system.ref(Till, "t")
                with trio.fail_after(10):
                    while await ref.ask("state") != [7, 500]:
                        await trio.sleep(0.01)
            return [store.codec.decode(r) async for r in store.read("Till-t")]

    log = trio.run(restart)
    received = [e for e in log if isinstance(e, Received)]
    assert [(r.message_id, r.data) for r in received][-1] == ("pay-500", {"amount": 500})
    assert trio.run(_inbox, db, "Till-t") == []


def test_a_dead_letter_is_resolved_once(capsys: pytest.CaptureFixture[str], db: str) -> None:
    assert run(capsys, "dead-letters", "retry", db, "Till-t", "3")[0] == 0
    err = fails(capsys, "dead-letters", "retry", db, "Till-t", "3")
    assert "dead letter 3 of 'Till-t' was already retried" in err
    err = fails(capsys, "dead-letters", "drop", db, "Till-t", "3")
    assert "already retried" in err
    assert len(trio.run(_inbox, db, "Till-t")) == 1  # stored once
    status, out, _ = run(capsys, "dead-letters", "drop", "--json", db, "Till-t", "1")
    assert status == 0 and json.loads(out)["resolved"] == "dropped"
    assert len(trio.run(_inbox, db, "Till-t")) == 1  # a drop stores nothing
    assert run(capsys, "dead-letters", db)[1] == "no dead letters waiting\n"
    assert run(capsys, "dead-letters", "--json", db)[1] == ""

    async def resolutions() -> list[Any]:
        async with eventstore.open(db) as store:
            return [store.codec.decode(r) async for r in store.read(DEAD_LETTERS)]

    assert trio.run(resolutions) == [DeadLetterResolved("Till-t", 3, "retried"),
                                     DeadLetterResolved("Till-t", 1, "dropped")]


@pytest.mark.parametrize(("argv", "says"), [
    (["retry", "{db}", "Till-x", "1"], "stream 'Till-x' has no events in"),
    (["retry", "{db}", "Till-t", "2"], "stream 'Till-t' has no dead letter 2; its dead "
                                       "letters are 1, 3"),
    (["drop", "{db}", "Till-t", "one"], "SEQ must be a whole number"),
    (["drop", "{db}", "Till-t"], "drop takes URL STREAM SEQ"),
    (["{db}", "Till-t"], "the list takes one URL"),
])
def test_mistakes_are_one_line(capsys: pytest.CaptureFixture[str], db: str, argv: list[str],
                               says: str) -> None:
    err = fails(capsys, "dead-letters", *(arg.format(db=db) for arg in argv))
    assert says in err
    assert "did you mean 'Till-t'" in fails(capsys, "dead-letters", "drop", db, "Till-u", "1")


def test_help_says_when_a_running_system_sees_a_retry(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["dead-letters", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "{retry,drop} URL STREAM SEQ" in text and "--all" in text
    assert "An ActorSystem running elsewhere does not watch the store: it picks the message up " \
        "when the actor is next activated" in text


async def test_a_retry_and_its_record_are_one_transaction(any_store: EventStore) -> None:
    await _poison(any_store)
    [first, _] = await dead_letters(any_store)
    assert isinstance(first.data, dict) and first.seq == 1
    done = await resolve(any_store, "Till-t", 1, "retried")
    assert done.resolved == "retried"
    with pytest.raises(actors._cli_util.CliError, match="already retried"):
        await resolve(any_store, "Till-t", 1, "retried")
    waiting = [r async for r in any_store.read_inbox("Till-t")]
    assert len(waiting) == 1 and waiting[0].metadata == {"message_id": "pay-500"}
    assert [letter.seq for letter in await dead_letters(any_store)] == [3]
    assert [letter.resolved for letter in await dead_letters(any_store, resolved=True)] == [
        "retried", None]
    log = [any_store.codec.decode(r) async for r in any_store.read("Till-t")]
    assert [e.seq for e in log if isinstance(e, DeadLettered)] == [1, 3]


async def test_a_running_system_runs_a_retried_message_when_it_next_reads_the_inbox(
        any_store: EventStore) -> None:
    async with actors.ActorSystem(any_store, actors=[Till]) as system:
        ref = system.ref(Till, "t")
        await ref.send(Pay(500), message_id="pay-500")
        with trio.fail_after(10):
            while not await dead_letters(any_store):
                await trio.sleep(0.01)
        Till.limit = 1000
        await resolve(any_store, "Till-t", 1, "retried")  # as the command does, from outside
        assert await ref.ask("state") == []  # the running actor has not looked
        await ref.send(Pay(7))  # a message makes it read its inbox: the retried one first
        with trio.fail_after(10):
            while await ref.ask("state") != [500, 7]:
                await trio.sleep(0.01)
