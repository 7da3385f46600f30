"""Faults under load against real gunicorn processes, briefly: bench/faults.py runs them long.

Each scenario starts its own gunicorn (as `make run` does) on a free port, loads it from
threads over 127.0.0.1, signals only the processes it started, by pid, and returns a report
whose `problems` list the invariants it broke. The report is printed, so `pytest -s` shows the
numbers.
"""

from __future__ import annotations

from bench.faults import (
    Report,
    max_requests_recycling,
    request_outliving_timeout,
    sigkill_under_load,
    sigterm_under_load,
)


def kept(report: Report) -> bool:
    print(report.text())
    assert not report.problems, f"{report.text()}\n--- server log ---\n{report.log[-4000:]}"
    return True


def test_sigkill_a_worker_loses_only_its_in_flight_requests() -> None:
    assert kept(sigkill_under_load(workers=2, concurrency=8, kills=2, interval=1.0))


def test_sigterm_completes_in_flight_requests_and_exits_0_within_10_s() -> None:
    assert kept(sigterm_under_load(workers=3, concurrency=4, slow=2, dribble=2.0))


def test_request_outliving_the_worker_timeout_is_answered_and_the_worker_replaced() -> None:
    assert kept(request_outliving_timeout(workers=2, timeout=4, concurrency=2))


def test_max_requests_recycling_loses_nothing() -> None:
    assert kept(max_requests_recycling(workers=2, concurrency=4, duration=3.0, max_requests=50))
