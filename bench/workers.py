"""Compare gunicorn worker classes: `python -m bench.workers "-k sync" "-k gevent ..."`.

For the project's own worker (no arguments) and each GUNICORN_CMD_ARGS given, single-row
POST /predict against the empty Flask endpoint under the same arguments, 16 connections,
interleaved as in `make bench`: the throughput ratio of the medians and the latency tail.
gevent is not a dependency: install it in the venv first to compare it.
"""

from __future__ import annotations

import dataclasses
import statistics
import sys
import tempfile
from pathlib import Path

from bench.run import FULL, Pair, service, single_row
from testkit.samples import iris_rows, single_bodies, write_bodies


def main(argv: list[str]) -> None:
    """Measure each worker's arguments in turn and print one line each."""
    plan = dataclasses.replace(FULL, reps=4, seconds=4, connections=(16,))
    rows = iris_rows()
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        bodies = write_bodies(Path(tmp), "single", single_bodies(rows))
        probe = single_bodies(rows)[0].encode()
        for args in ["", *argv]:
            pair = Pair(service(), service(baseline=True), bodies, probe)
            for server in (pair.target, pair.baseline):
                server.env["GUNICORN_CMD_ARGS"] = args
                server.env["WEB_CONCURRENCY"] = "2"
            runs = single_row(plan, {"gunicorn": pair})["gunicorn"]["runs"]["16"]
            target, baseline = runs["target"], runs["baseline"]
            ratio = statistics.median(r["rps"] for r in target) / statistics.median(
                r["rps"] for r in baseline
            )
            p50 = statistics.median(r["p50_ms"] for r in target)
            p99 = statistics.median(r["p99_ms"] for r in target)
            print(
                f"RESULT [{args or 'the project worker'}] {ratio:.2f}x the empty endpoint, "
                f"p50 {p50:.2f} ms, p99 {p99:.2f} ms, p99/p50 {p99 / p50:.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main(sys.argv[1:])
