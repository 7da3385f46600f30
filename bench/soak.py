"""Soak: a steady mixed load for minutes, then errors and per-worker memory growth.

`python -m bench.soak` runs 5 minutes at 32 concurrent connections on 127.0.0.1 against
gunicorn as `make run` starts it; the invariants are zero errors and every worker's USS
(private memory, /proc/PID/smaps_rollup) growing less than 5 % over the second half of the
measured run. A leak grows all along; a worker the warm-up served less can still take one
last allocator step early on (9.4 -> 10.0 MiB, then flat, in one 30 s run), which is not one.
tests/service/test_soak.py runs the same code for 30 seconds.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: `python bench/soak.py`
    sys.path.insert(0, str(ROOT))

from bench.load import Load, Report, Tally  # noqa: E402
from bench.sockets import all_workers  # noqa: E402
from testkit.processes import Server, functions_framework_server, gunicorn, memory_kib  # noqa: E402

MAX_GROWTH = 0.05
# Below this, growth is an allocator's step whatever its percentage (heap arenas and huge pages
# come in such steps on some machines); over the 30 s test it is still ~35 bytes a request.
STEP_KIB = 1024
STARTERS: dict[str, Callable[[Mapping[str, str]], Server]] = {
    "gunicorn": lambda env: gunicorn(env, workers=None),  # its default unless env says
    "functions-framework": functions_framework_server,
}


def expected_workers(target: str, env: Mapping[str, str]) -> int:
    """How many workers the target forks: gunicorn.conf.py's and functions-framework's defaults.

    `env` is all the settings a server started here gets: it inherits none from this process.
    """
    if target == "gunicorn":
        return int(env.get("WEB_CONCURRENCY") or len(os.sched_getaffinity(0)))
    return int(env.get("WORKERS") or 1)


def second_half_growth(kib: Sequence[int]) -> float:
    """USS growth from the middle sample to the last, relative; a run needs three samples."""
    middle = kib[len(kib) // 2]
    return (kib[-1] - middle) / middle


@dataclass
class Memory:
    """USS samples per worker: (seconds since the start, KiB)."""

    samples: dict[int, list[tuple[float, int]]] = field(default_factory=dict)

    def sample(self, workers: list[int], at: float) -> None:
        for pid in workers:
            try:
                self.samples.setdefault(pid, []).append((at, memory_kib(pid)["uss"]))
            except psutil.NoSuchProcess:
                pass  # a worker gone between listing and reading: the pid check reports it


def soak(
    duration: float = 300.0,
    connections: int = 32,
    warmup: float = 30.0,
    target: str = "gunicorn",
    env: Mapping[str, str] | None = None,
    every: float = 10.0,
) -> Report:
    """Run the mixed load for `duration` s (the first `warmup` s not measured for memory)."""
    report = Report(f"soak: {target}, {duration:.0f} s at {connections} connections")
    server = STARTERS[target](dict(env or {})).start()
    try:
        workers = all_workers(server, expected_workers(target, env or {}))
        memory = Memory()
        started = time.monotonic()
        with Load(server.port, connections) as load:
            time.sleep(warmup)
            memory.sample(workers, time.monotonic() - started)
            while (left := duration - (time.monotonic() - started)) > 0:
                time.sleep(min(every, left))
                memory.sample(server.pids()[1], time.monotonic() - started)
            outcomes = load.stop()
        elapsed = time.monotonic() - started
        after = server.pids()[1]
        tally = Tally(outcomes)
        report.facts.update(
            workers=len(workers),
            requests=f"{len(outcomes)} in {elapsed:.0f} s ({len(outcomes) / elapsed:,.0f}/s)",
            load=tally.summary(),
            errors=len(tally.failed),
            memory=f"USS (smaps_rollup) every {every:.0f} s after a {warmup:.0f} s warm-up",
        )
        report.check(not tally.failed, f"{len(tally.failed)} errors: {tally.kinds()}")
        report.check(after == workers, f"workers changed during the run: {workers} -> {after}")
        for pid in workers:
            points = memory.samples.get(pid, [])
            if len(points) < 3:
                report.check(False, f"worker {pid}: too few memory samples")
                continue
            growth = second_half_growth([kib for _, kib in points])
            step = max(1, len(points) // 10)  # about ten samples: the curve, not every point
            shown = points[::step]
            if shown[-1] != points[-1]:
                shown.append(points[-1])
            curve = " ".join(f"{kib / 1024:.1f}" for _, kib in shown)
            report.facts[f"worker {pid} USS MiB"] = f"{curve}; second half {100 * growth:+.2f} %"
            grown = points[-1][1] - points[len(points) // 2][1]
            report.check(
                growth < MAX_GROWTH or grown < STEP_KIB,
                f"worker {pid} grew {100 * growth:.1f} % ({grown} KiB) in the second half",
            )
    finally:
        code = server.stop()
        report.log = server.output()
    report.check(code == 0, f"server exited {code} on SIGTERM")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=300.0, help="seconds (default 300)")
    parser.add_argument("--connections", type=int, default=32, help="concurrent connections")
    parser.add_argument("--warmup", type=float, default=30.0, help="seconds before memory counts")
    parser.add_argument("--every", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--target", choices=sorted(STARTERS), default="gunicorn")
    parser.add_argument("--workers", type=int, help="WEB_CONCURRENCY (default: usable CPUs)")
    parser.add_argument("--threads", type=int, help="GUNICORN_THREADS (default 1)")
    parser.add_argument("--show-logs", action="store_true", help="print the server log")
    args = parser.parse_args(argv)
    if not 0 < args.warmup < args.duration:
        parser.error("--warmup must be positive and shorter than --duration")

    env = {}
    if args.workers:
        env["WEB_CONCURRENCY" if args.target == "gunicorn" else "WORKERS"] = str(args.workers)
    if args.threads:
        env["GUNICORN_THREADS" if args.target == "gunicorn" else "THREADS"] = str(args.threads)
    report = soak(args.duration, args.connections, args.warmup, args.target, env, args.every)
    print(report.text())
    if args.show_logs or report.problems:
        print(report.log[-5000:])
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
