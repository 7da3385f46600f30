"""Faults under load against real gunicorn processes, briefly: bench/faults.py runs them long.

Each scenario starts its own gunicorn (as `make run` does) on a free port, loads it from
threads over 127.0.0.1, signals only the processes it started, by pid, and returns a report
whose `problems` list the invariants it broke. The report is printed, so `pytest -s` shows the
numbers.
"""

from __future__ import annotations

import pytest

from bench.faults import (
    max_requests_recycling,
    request_past_its_deadline,
    sigkill_under_load,
    sigterm_under_load,
    slow_clients,
)
from bench.load import Report

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def kept(report: Report) -> bool:
    print(report.text())
    assert not report.problems, f"{report.text()}\n--- server log ---\n{report.log[-4000:]}"
    return True


def test_sigkill_a_worker_loses_only_its_in_flight_requests() -> None:
    assert kept(sigkill_under_load(workers=2, concurrency=8, kills=2, interval=1.0))


def test_sigterm_completes_in_flight_requests_and_exits_0_within_10_s() -> None:
    assert kept(sigterm_under_load(workers=3, concurrency=4, slow=2, dribble=2.0))


def test_request_past_its_body_deadline_gets_a_408_and_holds_no_worker() -> None:
    assert kept(request_past_its_deadline(workers=2, body_timeout=3, concurrency=2))


@pytest.mark.parametrize("kind", ["headers", "body"])
def test_a_hundred_slow_clients_do_not_starve_a_well_behaved_one(kind: str) -> None:
    """With gunicorn's sync workers, two such clients were enough to hold both workers."""
    assert kept(slow_clients("gunicorn", slow=100, kind=kind, duration=6.0, deadline=3))


def test_max_requests_recycling_loses_nothing() -> None:
    assert kept(max_requests_recycling(workers=2, concurrency=4, duration=3.0, max_requests=50))
