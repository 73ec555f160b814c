"""The bank saga of ``bank.py``, traced with OpenTelemetry: prints each transfer's trace.

    python samples/traced_bank.py [traced_bank.db]

configures an OpenTelemetry SDK tracer provider (spans kept in memory) before the bank starts,
so its ``ActorSystem`` installs the tracing hooks by itself; then runs ``bank.main`` and prints
the trace of every transfer: the transfer's turn, the account turns it asked for, and each
commit, nested as they happened. Needs the extra: ``pip install 'trio-actors[otel]'``.
"""

from __future__ import annotations

import sys
from collections import defaultdict

import bank  # the sample beside this file
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import actors


def describe(span: ReadableSpan) -> str:
    """One line for a span: its name and what it is about."""
    a = dict(span.attributes or {})
    if span.name == "actors.commit":
        return f"actors.commit  {a['actors.stream']}: {a['actors.commit.batch_size']} event(s)"
    outcome = a["actors.outcome"]
    if span.status.description:
        outcome = f"{outcome}: {span.status.description}"
    return (f"{span.name}  {a['actors.kind']} {a['actors.id']}, version "
            f"{a['actors.version.from']} -> {a['actors.version.to']}, {outcome}")


def tree(span: ReadableSpan, children: dict[int, list[ReadableSpan]], depth: int = 0) -> str:
    lines = ["  " * depth + describe(span)]
    for child in sorted(children[span.context.span_id], key=lambda s: s.start_time or 0):
        lines.append(tree(child, children, depth + 1))
    return "\n".join(lines)


def traces(spans: tuple[ReadableSpan, ...], root_name: str) -> list[str]:
    """The tree of every trace whose root span is named ``root_name`` and handles a message
    sent with an id (scope ``msg:<id>``: a transfer's start, not the ask for its outcome)."""
    children: dict[int, list[ReadableSpan]] = defaultdict(list)
    for span in spans:
        if span.parent is not None:
            children[span.parent.span_id].append(span)
    roots = [span for span in spans if span.parent is None and span.name == root_name
             and str((span.attributes or {}).get("actors.scope")).startswith("msg:")]
    return [tree(root, children) for root in sorted(roots, key=lambda s: s.start_time or 0)]


async def main(path: str) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)  # before the system starts: it installs the hooks

    await bank.main(path)
    for n, text in enumerate(traces(exporter.get_finished_spans(), "transfer receive"), 1):
        print(f"\nTrace of transfer {n}:\n{text}")


if __name__ == "__main__":
    actors.run_program(main, sys.argv[1] if len(sys.argv) > 1 else "traced_bank.db")
