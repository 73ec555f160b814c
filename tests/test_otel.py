"""OpenTelemetry hooks: spans per turn, commit and durable call, trace context across actors,
metrics, and nothing imported or installed without a provider."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import attrs
import pytest
import trio
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

import actors
import eventstore
from actors import durable
from actors.otel import OpenTelemetry
from eventstore.memory import MemoryEventStore


@eventstore.event_type("otel.Noted")
@attrs.frozen
class Noted:
    text: str


@attrs.frozen
class Relay:
    """Ask ``to`` for ``text``, then note it."""

    to: actors.ActorRef
    text: str


@attrs.define
class Notebook(actors.Actor):
    kind = "notebook"

    notes: list[str] = attrs.Factory(list)

    def apply(self, event: Any) -> None:
        self.notes.append(event.text)

    async def receive(self, message: Any) -> Any:
        match message:
            case Relay(to=to, text=text):
                answer = await to.ask(text)
                self.emit(Noted(f"relayed {answer}"))
                return answer
            case "boom":
                raise ValueError("boom")
            case "durable":
                await durable.time.aio()
                await durable.now.aio()
                await durable.sleep.aio(60)
                self.emit(Noted("slept"))
            case str(text):
                self.emit(Noted(text))
                return text.upper()
        return None


@attrs.define
class Alarm(actors.Actor):
    kind = "alarm"

    rang: int = 0

    def apply(self, event: Any) -> None:
        self.rang += 1

    async def receive(self, message: Any) -> None:
        self.notifier.notify_at(durable.now() + timedelta(seconds=30), "ring")

    async def on_notify(self) -> None:
        if self.notifier.due(durable.now()):
            self.emit(Noted("rang"))


@pytest.fixture
def spans() -> Iterator[tuple[InMemorySpanExporter, TracerProvider]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter, provider
    provider.shutdown()


def named(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [span for span in exporter.get_finished_spans() if span.name == name]


async def test_an_ask_inside_a_turn_puts_both_turns_in_one_trace(
        spans: tuple[InMemorySpanExporter, TracerProvider]) -> None:
    exporter, provider = spans
    store = MemoryEventStore()
    async with actors.ActorSystem(store, actors=[Notebook],
                                  telemetry=OpenTelemetry(tracer_provider=provider)) as system:
        left, right = system.ref(Notebook, "left"), system.ref(Notebook, "right")
        with provider.get_tracer("test").start_as_current_span("request") as request:
            assert await left.ask(Relay(right, "hello")) == "HELLO"
    outer, inner = (next(s for s in named(exporter, "notebook receive")
                         if s.attributes and s.attributes["actors.id"] == actor_id)
                    for actor_id in ("left", "right"))
    trace_id = request.get_span_context().trace_id
    assert {outer.context.trace_id, inner.context.trace_id} == {trace_id}
    assert outer.parent is not None and outer.parent.span_id == request.get_span_context().span_id
    assert inner.parent is not None and inner.parent.span_id == outer.context.span_id
    # Each turn's commit is a child of its turn, with the batch and the store.
    commits = {s.attributes["actors.stream"]: s for s in named(exporter, "actors.commit")
               if s.attributes}
    assert commits["notebook-right"].parent.span_id == inner.context.span_id  # type: ignore[union-attr]
    assert commits["notebook-left"].parent.span_id == outer.context.span_id  # type: ignore[union-attr]
    assert commits["notebook-left"].attributes == {
        "actors.stream": "notebook-left", "actors.commit.batch_size": 1,
        "eventstore.backend": "MemoryEventStore", "actors.version": 1}
    # The events carry their turn's trace context.
    for stream, span in (("notebook-left", outer), ("notebook-right", inner)):
        [event] = [e async for e in store.read(stream) if not e.type.startswith("actors.")]
        traceparent = event.metadata["traceparent"]
        assert traceparent.split("-")[1:3] == [f"{trace_id:032x}", f"{span.context.span_id:016x}"]


async def test_a_turn_span_names_the_actor_versions_scope_and_outcome(
        spans: tuple[InMemorySpanExporter, TracerProvider]) -> None:
    exporter, provider = spans
    async with actors.ActorSystem(MemoryEventStore(), actors=[Notebook],
                                  telemetry=OpenTelemetry(tracer_provider=provider)) as system:
        ref = system.ref(Notebook, "n")
        await ref.ask("one", message_id="m-1")
        with pytest.raises(ValueError, match="boom"):
            await ref.ask("boom")
        await ref.ask("two")
    first, failed, second = named(exporter, "notebook receive")
    assert first.attributes == {
        "actors.kind": "notebook", "actors.id": "n", "actors.scope": "msg:m-1",
        "actors.version.from": 0, "actors.version.to": 2, "actors.outcome": "ok"}  # + its reply
    assert failed.attributes is not None and failed.attributes["actors.outcome"] == "failed"
    assert failed.attributes["actors.scope"] == "once"
    assert failed.status.status_code is StatusCode.ERROR
    assert [event.name for event in failed.events] == ["exception"]
    assert second.attributes is not None
    assert (second.attributes["actors.version.from"], second.attributes["actors.version.to"]) \
        == (2, 3)
    # Without a surrounding span, each message starts a trace of its own.
    assert first.parent is None and first.context.trace_id != second.context.trace_id


async def test_durable_calls_have_spans_in_their_turn(
        spans: tuple[InMemorySpanExporter, TracerProvider],
        autojump_clock: trio.testing.MockClock) -> None:
    exporter, provider = spans
    async with actors.ActorSystem(MemoryEventStore(), actors=[Notebook],
                                  clock=actors.VirtualClock(),
                                  telemetry=OpenTelemetry(tracer_provider=provider)) as system:
        await system.ref(Notebook, "d").ask("durable", message_id="d-1")
    [turn] = named(exporter, "notebook receive")
    [time_], [now], [sleep] = (named(exporter, f"durable.{f}") for f in ("time", "now", "sleep"))
    for span, call in ((time_, 1), (now, 2), (sleep, 3)):
        assert span.parent is not None and span.parent.span_id == turn.context.span_id
        assert span.attributes is not None
        assert span.attributes["actors.scope"] == "msg:d-1"
        assert span.attributes["actors.durable.call"] == call
        assert span.attributes["actors.durable.replayed"] is False
    assert sleep.attributes is not None and sleep.attributes["actors.durable.seconds"] == 60
    # The sleep's commit point is a commit inside the sleep.
    sleep_commit = [s for s in named(exporter, "actors.commit")
                    if s.parent is not None and s.parent.span_id == sleep.context.span_id]
    assert len(sleep_commit) == 1


def metric_points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    data = reader.get_metrics_data()
    assert data is not None
    found: dict[str, list[Any]] = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                found.setdefault(metric.name, []).extend(metric.data.data_points)
    return found


async def test_metrics_count_turns_commits_mailboxes_actors_and_timer_lateness(
        autojump_clock: trio.testing.MockClock) -> None:
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    async with actors.ActorSystem(MemoryEventStore(), actors=[Notebook, Alarm],
                                  clock=actors.VirtualClock(),
                                  telemetry=OpenTelemetry(meter_provider=meters)) as system:
        notebook = system.ref(Notebook, "n")
        for text in ("a", "b", "c"):
            notebook.tell(text)  # queued: the gauge sees them waiting
        points = metric_points(reader)
        [depth] = points["actors.mailbox.depth"]
        assert (depth.value, depth.attributes) == (3, {"actors.kind": "notebook"})
        await notebook.ask("d")
        with pytest.raises(ValueError, match="boom"):
            await notebook.ask("boom")
        await system.ref(Alarm, "a").ask("set")
        await trio.sleep(60)  # the alarm rings after 30 s (virtual)
        points = metric_points(reader)
        assert sorted((p.attributes["actors.kind"], p.value) for p in points["actors.active"]) \
            == [("alarm", 1), ("notebook", 1)]
    points = metric_points(reader)
    turns = {p.attributes["actors.kind"]: p.value for p in points["actors.turns"]}
    assert turns == {"notebook": 5, "alarm": 2}  # the alarm: one message, one wake-up
    [failed] = points["actors.turns.failed"]
    assert (failed.value, failed.attributes) == (1, {"actors.kind": "notebook"})
    sizes = {p.attributes["actors.kind"]: (p.count, p.sum) for p in
             points["actors.commit.batch_size"]}
    assert sizes["notebook"][1] == 4  # a, b, c and d; the failed turn committed nothing
    durations = {p.attributes["actors.kind"]: p.count for p in points["actors.commit.duration"]}
    assert durations == {kind: count for kind, (count, _) in sizes.items()}
    [lateness] = points["actors.timer.lateness"]
    assert lateness.count == 1 and 0 <= lateness.sum < 1


async def test_no_hooks_without_a_provider_or_with_none(
        spans: tuple[InMemorySpanExporter, TracerProvider]) -> None:
    exporter, provider = spans
    async with actors.ActorSystem(MemoryEventStore(), actors=[Notebook],
                                  telemetry=None) as system:
        with provider.get_tracer("test").start_as_current_span("request"):
            await system.ref(Notebook, "n").ask("x")
    assert [span.name for span in exporter.get_finished_spans()] == ["request"]


def test_a_bad_telemetry_option_is_refused() -> None:
    with pytest.raises(actors.InvalidActorType, match="telemetry must be 'auto', None or an"):
        actors.ActorSystem(MemoryEventStore(), telemetry="on")  # type: ignore[arg-type]


def run_python(source: str) -> str:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(source)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


COUNTER = """
    import attrs, trio
    import actors
    from eventstore.memory import MemoryEventStore

    @attrs.define
    class Counter(actors.Actor):
        n: int = 0
        def apply(self, event): self.n += 1
        async def receive(self, message): return self.n

    async def main():
        async with actors.ActorSystem(MemoryEventStore(), actors=[Counter]) as system:
            await system.ref(Counter, "c").ask("hi")
"""


def test_without_a_provider_nothing_of_opentelemetry_is_imported() -> None:
    out = run_python(COUNTER + """
    trio.run(main)
    import sys
    print(sorted(name for name in sys.modules if name.startswith("opentelemetry")))
    """)
    assert out.strip() == "[]"


def test_a_global_sdk_provider_at_start_installs_the_hooks() -> None:
    out = run_python(COUNTER + """
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    trio.run(main)  # no provider yet: nothing recorded
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    trio.run(main)
    print(sorted(span.name for span in exporter.get_finished_spans()))
    """)
    assert out.strip() == "['Counter receive']"


async def test_systems_sharing_a_meter_provider_all_count_in_the_gauges() -> None:
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    async with actors.ActorSystem(MemoryEventStore(), actors=[Notebook],
                                  telemetry=OpenTelemetry(meter_provider=meters)) as one, \
            actors.ActorSystem(MemoryEventStore(), actors=[Alarm],
                               telemetry=OpenTelemetry(meter_provider=meters)) as two:
        await one.ref(Notebook, "n").ask("x")
        await two.ref(Alarm, "a").ask("set")
        active = metric_points(reader)["actors.active"]
        assert sorted((p.attributes["actors.kind"], p.value) for p in active) == [
            ("alarm", 1), ("notebook", 1)]
    # Stopped systems are no longer watched.
    assert "actors.active" not in metric_points(reader)


@attrs.define
class Sleeper(actors.Actor):
    kind = "sleeper"

    def apply(self, event: Any) -> None:
        pass

    async def on_start(self) -> None:
        self.emit(Noted("started"))

    async def run(self) -> None:
        await durable.sleep.aio(3600)


async def test_on_start_and_run_have_spans_and_a_stop_mid_sleep_is_no_failure(
        spans: tuple[InMemorySpanExporter, TracerProvider],
        autojump_clock: trio.testing.MockClock) -> None:
    exporter, provider = spans
    async with actors.ActorSystem(MemoryEventStore(), actors=[Sleeper],
                                  clock=actors.VirtualClock(),
                                  telemetry=OpenTelemetry(tracer_provider=provider)) as system:
        await system.spawn(Sleeper, "s")
        await trio.sleep(60)  # run() is in its durable sleep
    [start] = named(exporter, "sleeper on_start")
    [run] = named(exporter, "sleeper run")
    assert start.attributes is not None and run.attributes is not None
    assert (start.attributes["actors.scope"], start.attributes["actors.outcome"]) == (
        "start", "ok")
    # The stop cuts the sleep short, or cancels run()'s task first: either way, no failure.
    assert run.attributes["actors.scope"] == "run"
    assert run.attributes["actors.outcome"] in {"interrupted", "cancelled"}
    assert run.status.status_code is StatusCode.UNSET
    [sleep] = named(exporter, "durable.sleep")
    assert sleep.parent is not None and sleep.parent.span_id == run.context.span_id
    assert sleep.attributes is not None and sleep.attributes["actors.durable.interrupted"]
    assert sleep.status.status_code is StatusCode.UNSET


@attrs.define
class Plain(actors.Actor):
    """A plain-def handler: it runs on a worker thread."""

    kind = "plain"

    def apply(self, event: Any) -> None:
        pass

    def receive(self, message: Any) -> None:  # type: ignore[override]
        durable.time()
        self.emit(Noted(message))


async def test_a_plain_def_handler_on_a_thread_is_traced_too(
        spans: tuple[InMemorySpanExporter, TracerProvider]) -> None:
    exporter, provider = spans
    store = MemoryEventStore()
    async with actors.ActorSystem(store, actors=[Plain],
                                  telemetry=OpenTelemetry(tracer_provider=provider)) as system:
        await system.ref(Plain, "p").ask("x")
    [turn] = named(exporter, "plain receive")
    [time_] = named(exporter, "durable.time")
    assert time_.parent is not None and time_.parent.span_id == turn.context.span_id
    [event] = [e async for e in store.read("plain-p") if e.type == "otel.Noted"]
    assert event.metadata["traceparent"].split("-")[2] == f"{turn.context.span_id:016x}"
