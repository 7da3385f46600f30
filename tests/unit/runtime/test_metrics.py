"""webapp/runtime/metrics.py writes its multiprocess samples as prometheus_client itself does.

Its value class trades prometheus_client's per-write checks for a position learnt once and a
reopen at fork: the files must read back the same, in the parent and in a forked child. Where
that private path is not trusted (webapp/pins.py), prometheus_client's own class writes them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from testkit.processes import ROOT

pytestmark = pytest.mark.integration

# Counts and times, some before and some after a fork, then the samples summed over files.
SCRIPT = """
import json, os, sys
if sys.argv[1] == "ours":
    from webapp.runtime import metrics
    from prometheus_client import values
    Counter, Histogram = metrics.Counter, metrics.Histogram
    writer = values.ValueClass.__name__
else:
    from prometheus_client import Counter, Histogram
    writer = ""
from prometheus_client import CollectorRegistry, multiprocess

requests = Counter("t_requests_total", "t", ["route"])
latency = Histogram("t_latency_seconds", "t", ["route"], buckets=(0.001, 0.01, 0.1))
for i in range(50):
    requests.labels("/a").inc()
    latency.labels("/a").observe(i / 1000)
requests.labels("/b").inc(3)
child = os.fork()
if child == 0:
    for i in range(20):
        requests.labels("/a").inc(2)
        latency.labels("/b").observe(i / 100)
    os._exit(0)
os.waitpid(child, 0)
requests.labels("/a").inc()
registry = CollectorRegistry()
multiprocess.MultiProcessCollector(registry)
samples = sorted(
    (s.name, sorted(s.labels.items()), round(s.value, 9))
    for metric in registry.collect()
    for s in metric.samples
    if s.name.startswith("t_")
)
print(json.dumps({"samples": samples, "writer": writer}))
"""


def samples(value_class: str, folder: Path, **env: str) -> tuple[list[object], str]:
    """The samples summed over the files the script wrote, and the value class that wrote them
    (for ours)."""
    folder.mkdir()
    env = {"PROMETHEUS_MULTIPROC_DIR": str(folder), "PATH": "/usr/bin:/bin", **env}
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT, value_class],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    found = json.loads(run.stdout)
    return found["samples"], found["writer"]


def test_samples_read_back_as_prometheus_client_s_own(tmp_path: Path) -> None:
    ours, writer = samples("ours", tmp_path / "ours")
    assert writer == "_FileValue"
    assert ours == samples("prometheus_client", tmp_path / "theirs")[0]
    assert ["t_requests_total", [["route", "/a"]], 91.0] in ours  # 50 + 40 in the child + 1


def test_public_apis_only_leaves_the_files_to_prometheus_client(tmp_path: Path) -> None:
    public, writer = samples("ours", tmp_path / "public", PUBLIC_APIS_ONLY="true")
    assert writer == "MmapedValue"
    assert public == samples("ours", tmp_path / "private")[0]
