"""Prometheus metrics, correct under several gunicorn workers.

With PROMETHEUS_MULTIPROC_DIR set (gunicorn.conf.py sets it before anything imports
prometheus_client), each process writes its samples to files there and GET /metrics sums
them, so counts from every worker add up and a replaced worker's counts are kept. Without
it (the Cloud Function, `flask run`) the process's own registry is served.
"""

from __future__ import annotations

import contextlib
import os
import re
import struct
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from ..pins import private_api_usable

if TYPE_CHECKING:
    from prometheus_client.mmap_dict import MmapedDict

MULTIPROCESS_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR")


class _FileValue:
    """A sample in this process's multiprocess file, written as prometheus_client's own
    MmapedValue writes it (same files, keys and layout, read by its MultiProcessCollector),
    at a third of the cost per write: six per prediction.

    The slot's position is learnt once from prometheus_client's MmapedDict; the files are
    reopened, and every value read again, in a forked child (os.register_at_fork), not
    checked for on every write. Not for threads: a gunicorn worker here has one. Private
    (MmapedDict's _positions and _m): used only on the tested prometheus_client.
    """

    _multiprocess = True
    _all: list[_FileValue] = []
    _files: dict[str, MmapedDict] = {}

    def __init__(
        self,
        typ: str,
        metric_name: str,
        name: str,
        labelnames: Any,
        labelvalues: Any,
        help_text: str,
        multiprocess_mode: str = "",
        **kwargs: Any,
    ) -> None:
        from prometheus_client.mmap_dict import mmap_key  # the tested version's, not public

        self._prefix = f"{typ}_{multiprocess_mode}" if typ == "gauge" else typ
        self._key = mmap_key(metric_name, name, labelnames, labelvalues, help_text)
        self._open()
        _FileValue._all.append(self)

    def _open(self) -> None:
        from prometheus_client.mmap_dict import MmapedDict

        files = _FileValue._files
        if self._prefix not in files:
            path = os.path.join(MULTIPROCESS_DIR or "", f"{self._prefix}_{os.getpid()}.db")
            files[self._prefix] = MmapedDict(path)
        self._file = files[self._prefix]
        self._value, _ = self._file.read_value(self._key)
        self._position = self._file._positions[self._key]

    @classmethod
    def _reopen_all(cls) -> None:
        for file in cls._files.values():
            file.close()
        cls._files = {}
        for value in cls._all:
            value._open()

    def inc(self, amount: float) -> None:
        self._value += amount
        self._file._m[self._position : self._position + 16] = _DOUBLES(self._value, 0.0)

    def set(self, value: float, timestamp: float | None = None) -> None:
        self._value = value
        self._file._m[self._position : self._position + 16] = _DOUBLES(value, timestamp or 0.0)

    def set_exemplar(self, exemplar: Any) -> None:
        return

    def get(self) -> float:
        return self._value

    def get_exemplar(self) -> None:
        return None


_DOUBLES = struct.Struct("dd").pack
if MULTIPROCESS_DIR and private_api_usable("prometheus-client", "the metrics' writes"):
    os.register_at_fork(after_in_child=_FileValue._reopen_all)
    values.ValueClass = _FileValue

REQUESTS = Counter("http_requests_total", "HTTP requests answered.", ["route", "method", "status"])
LATENCY = Histogram(
    "http_request_duration_seconds",
    "Time from the request reaching the app to its response.",
    ["route", "method"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0),
)
PREDICTIONS = Counter("predictions_total", "Instances predicted, by class.", ["label"])
BATCH_SIZE = Histogram(
    "prediction_batch_size",
    "Instances per prediction request.",
    buckets=(1, 2, 5, 10, 50, 100, 500, 1000, 5000, 10000),
)
VALIDATION_FAILURES = Counter(
    "validation_failures_total", "Prediction requests refused, by status.", ["status"]
)
MODEL_INFO = Gauge(
    "model_info",
    "The model being served (always 1).",
    ["name", "version", "sha256"],
    multiprocess_mode="max",
)


def discard_own_samples() -> None:
    """Forget this process's counts and timings (gunicorn's master, after its warm-up).

    Only in multiprocess mode: the process's counter and histogram files are deleted (the
    names prometheus_client gives them), and the model_info gauge's file is kept. The master
    counts nothing afterwards, and each forked worker writes files of its own.
    """
    if not MULTIPROCESS_DIR:
        return
    for kind in ("counter", "histogram"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(MULTIPROCESS_DIR, f"{kind}_{os.getpid()}.db"))


class ServerProcesses:
    """CPU, memory, open files and start time of gunicorn's master and each live worker, by pid.

    prometheus_client's ProcessCollector sees only the process that answers the scrape. The
    pids here are those with files in the multiprocess directory (each worker's are named after
    it; the master keeps its model_info file), read from /proc at scrape time. A pid counts
    only while it is this process's parent or a child of it: a dead worker's files stay for its
    counts, and its pid may belong to another process by then.
    """

    _PID = re.compile(r"_(\d+)\.db")

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.ticks = os.sysconf("SC_CLK_TCK")
        self.page = os.sysconf("SC_PAGE_SIZE")
        with open("/proc/stat") as stat:
            self.boot = next(int(line.split()[1]) for line in stat if line.startswith("btime "))

    def collect(self) -> Iterator[Metric]:
        cpu = CounterMetricFamily(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds.",
            labels=["pid"],
        )
        memory = GaugeMetricFamily(
            "process_resident_memory_bytes", "Resident memory size in bytes.", labels=["pid"]
        )
        files = GaugeMetricFamily(
            "process_open_fds", "Number of open file descriptors.", labels=["pid"]
        )
        started = GaugeMetricFamily(
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            labels=["pid"],
        )
        master = os.getppid()
        for pid in sorted(self._pids()):
            try:
                fields = _stat_fields(pid)
                if pid != master and int(fields[1]) != master:
                    continue
                with open(f"/proc/{pid}/statm") as statm:
                    resident = int(statm.read().split()[1]) * self.page
                open_fds = len(os.listdir(f"/proc/{pid}/fd"))
            except (OSError, ValueError, IndexError):  # exited meanwhile
                continue
            label = [str(pid)]
            cpu.add_metric(label, (int(fields[11]) + int(fields[12])) / self.ticks)
            memory.add_metric(label, resident)
            files.add_metric(label, open_fds)
            started.add_metric(label, self.boot + int(fields[19]) / self.ticks)
        yield from (cpu, memory, files, started)

    def _pids(self) -> set[int]:
        return {int(m.group(1)) for n in os.listdir(self.directory) if (m := self._PID.search(n))}


def _stat_fields(pid: int) -> list[str]:
    """/proc/<pid>/stat from its third field (state, ppid, ...): the command name before it, in
    parentheses, may hold spaces."""
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rpartition(")")[2].split()


def render() -> tuple[bytes, str]:
    """The exposition text and its content type, summed over processes when there are many."""
    if MULTIPROCESS_DIR:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        registry.register(ServerProcesses(MULTIPROCESS_DIR))
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
