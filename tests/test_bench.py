"""The benchmark harness's logic: interleaved rounds, paired ratios, the table, ``--quick``.

No real benchmark runs here: the measured functions are fakes returning set figures.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _bench_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    """``bench`` lives at the top of the repository, not in the installed distribution."""
    monkeypatch.syspath_prepend(str(ROOT))


def fake(name: str, figures: list[float], calls: list[str]) -> Callable[[], float]:
    values: Iterator[float] = iter(figures)

    def work() -> float:
        calls.append(name)
        return next(values)

    return work


def test_rounds_alternate_ours_and_the_peer() -> None:
    from bench._harness import paired

    calls: list[str] = []
    pair = paired(fake("ours", [10.0, 30.0, 20.0, 40.0], calls),
                  fake("peer", [5.0, 10.0, 4.0, 40.0], calls), repeats=4)

    assert calls == ["ours", "peer", "peer", "ours", "ours", "peer", "peer", "ours"]
    assert pair.ours == (10.0, 30.0, 20.0, 40.0)
    assert pair.ratios == [2.0, 3.0, 5.0, 1.0]


def test_rounds_rotate_three_cases() -> None:
    from bench._harness import rounds

    calls: list[str] = []
    figures = rounds({name: fake(name, [1.0, 2.0, 3.0], calls) for name in "abc"}, repeats=3)

    assert calls == list("abc" "bca" "cab")
    assert figures == {name: [1.0, 2.0, 3.0] for name in "abc"}


def test_lower_is_better_inverts_the_ratio() -> None:
    from bench._harness import paired

    calls: list[str] = []
    pair = paired(fake("ours", [1.0, 2.0], calls), fake("peer", [4.0, 2.0], calls),
                  higher_is_better=False, repeats=2)

    assert pair.ratios == [4.0, 1.0]


def test_table_prints_the_median_ratio_its_range_and_the_verdict(
        capsys: pytest.CaptureFixture[str]) -> None:
    from bench._harness import Report, paired

    calls: list[str] = []
    report = Report()
    report.row("fake", "paired case", paired(fake("ours", [10.0, 30.0, 20.0], calls),
                                             fake("peer", [5.0, 10.0, 4.0], calls), repeats=3),
               "ops/s", peer="fake peer", target=">= 2.5x")
    report.row("fake", "plain case", 9.0, "ms", target="< 10 ms")
    printed = capsys.readouterr().out

    assert "ratio 3.00x, 2.00-5.00x over 3 rounds" in printed
    table = report.table()
    assert "3.00x" in table and "2.00-5.00x" in table and "ratio min-max" in table
    paired_line, plain_line = table.splitlines()[2:]
    assert "fake peer" in paired_line and paired_line.endswith("met")
    assert plain_line.endswith("met")
    markdown = report.markdown()
    assert ("| fake | paired case | 20 | ops/s | fake peer | 5 | 3.00x | 2.00-5.00x | 3 |"
            in markdown)


@pytest.mark.parametrize(("target", "value", "ratio", "met"), [
    (">= 0.8x", 1.0, 0.79, False),
    (">= 0.8x", 1.0, 0.8, True),
    ("< 10 ms", 9.9, None, True),
    ("<= 4 KB", 4097.0, None, False),
    (">= 6x and >= 250k events/s", 300_000.0, 6.5, True),
    (">= 6x and >= 250k events/s", 200_000.0, 6.5, False),
    ("~1x", 1.0, 1.0, None),
    (">= 2x", 1.0, None, None),
])
def test_targets_are_judged_on_the_medians(target: str, value: float, ratio: float | None,
                                           met: bool | None) -> None:
    from bench._harness import judge

    assert judge(target, value, ratio) is met


def test_a_peer_without_a_paired_measurement_is_refused() -> None:
    from bench._harness import Report

    with pytest.raises(ValueError, match="paired"):
        Report().row("fake", "case", 1.0, "ops/s", peer="unpaired peer")


def test_quick_is_accepted_and_lists_one_line_per_benchmark(
        capsys: pytest.CaptureFixture[str]) -> None:
    from bench.__main__ import available, main

    assert main(["--quick", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()

    assert [line.split(":")[0] for line in lines] == available()
    assert all(len(line.split(": ", 1)[1]) > 10 for line in lines)
    assert {"actors", "replay", "send", "store", "timers"} <= set(available())


def test_unknown_benchmark_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    from bench.__main__ import main

    assert main(["--quick", "nosuch"]) == 2
    assert "unknown benchmark(s): nosuch; available:" in capsys.readouterr().err


def test_send_bench_runs_quickly_and_checks_what_it_measures(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # Small sizes, one round: the bench's own checks (every message processed once, the
    # inboxes empty, the balances moved) run; the figures mean nothing at this size.
    from bench import bench_send
    from bench._harness import SETTINGS, Files, Report

    monkeypatch.setattr(SETTINGS, "repeats", 1)
    monkeypatch.setattr(SETTINGS, "scale", 0.02)
    report = Report()
    bench_send.run(report, quick=True)
    assert [row.case.split(",")[0] for row in report.rows] == ["send"] * 3
    files = Files("test-bench-send-")
    try:
        assert bench_send.ours_transfers(files, 1, bench_send.Clocks()) > 0
    finally:
        files.remove()


def test_cluster_bench_runs_members_as_processes_and_counts_their_cpu(
        postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Tiny sizes, one round: the members (real processes) answer every ask, the uniform
    # workload crosses members, CPU is found for the members and their PostgreSQL backends,
    # and every schema the bench made is dropped. The figures mean nothing at this size.
    import psycopg

    from bench import bench_cluster
    from bench._harness import SETTINGS, Report

    monkeypatch.setenv("ACTORS_TEST_POSTGRES_URL", postgres_url)  # for the member processes
    monkeypatch.setattr(bench_cluster, "URL", postgres_url)
    monkeypatch.setattr(SETTINGS, "repeats", 1)
    made: list[str] = []
    fresh = bench_cluster.fresh_schema

    @contextmanager
    def recorded() -> Iterator[str]:
        with fresh() as name:
            made.append(name)
            yield name

    monkeypatch.setattr(bench_cluster, "fresh_schema", recorded)
    report = Report()
    bench_cluster.fencing(report, 5)
    bench_cluster.scaling(report, 2, 5, 5)

    assert [row.case.rsplit(", ", 1)[1] for row in report.rows] == ["wall clock", "CPU time"] * 2
    assert report.rows[0].target == ">= 0.8x"
    assert report.rows[2].case.startswith("2 members, uniform (")
    assert "(0% cross" not in report.rows[2].case
    assert all(row.value > 0 and row.pair is not None and row.pair.peer_median > 0
               for row in report.rows)
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        left = conn.execute("SELECT nspname FROM pg_namespace WHERE nspname = ANY(%s)",
                            (made,)).fetchall()
    assert len(made) == 3 and not left


def test_cpu_seconds_reads_this_process() -> None:
    import os
    import time

    from bench.bench_cluster import cpu_seconds

    before = cpu_seconds(os.getpid())
    deadline = time.process_time() + 0.05
    while time.process_time() < deadline:
        pass
    after = cpu_seconds(os.getpid())
    assert before is not None and after is not None and after > before
    assert cpu_seconds(2**22 + 1) is None  # above pid_max: no such process
