"""A 30-second soak: zero errors, and under 5 % per-worker memory growth in its second half.

bench/soak.py is the same code for 5 minutes at 32 connections (`python -m bench.soak`).
"""

from __future__ import annotations

import pytest

from bench.soak import MAX_GROWTH, second_half_growth, soak


@pytest.mark.integration
@pytest.mark.slow
def test_thirty_second_soak_has_no_errors_and_flat_worker_memory() -> None:
    report = soak(duration=30, connections=32, warmup=10, every=5, env={"WEB_CONCURRENCY": "2"})
    print(report.text())
    assert not report.problems, f"{report.text()}\n--- server log ---\n{report.log[-4000:]}"


@pytest.mark.unit
def test_an_early_step_passes_and_a_steady_leak_fails() -> None:
    step = [9_626, 10_240, 10_240, 10_250, 10_250]  # KiB: the make test run that failed once
    leak = [10_240, 10_752, 11_264, 11_776, 12_288]  # +512 KiB every sample
    assert second_half_growth(step) < MAX_GROWTH <= second_half_growth(leak)
