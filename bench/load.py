"""Load for the faults and the soak: a mix of requests from threads, their outcomes and reports.

Load sends the mix (MIX: predictions single and batched, probabilities, a 422, a 400, health)
over 127.0.0.1, one connection per request, and checks every answer; Tally counts and times
the outcomes; Report holds a scenario's facts and the invariants it broke.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from testkit.rawhttp import NoResponse, exchange, request_bytes
from testkit.samples import ROWS, SETOSA


def json_body(document: object) -> bytes:
    """`document` as a request body."""
    return json.dumps(document).encode()


@dataclass(frozen=True)
class Probe:
    """One request of the load mix, the status it must get and, if known, the exact body."""

    name: str
    data: bytes
    status: int
    body: bytes | None = None


MIX = (
    Probe("single", request_bytes("POST", "/predict", json_body(SETOSA)), 200, b'{"prediction":0}'),
    Probe(
        "batch",
        request_bytes(
            "POST",
            "/predict",
            json_body({"instances": [SETOSA, *ROWS[1:]] * 10}),
        ),
        200,
        json_body({"predictions": [0, 2, 1] * 10}).replace(b" ", b""),
    ),
    Probe(
        "probabilities",
        request_bytes("POST", "/predict?probabilities=true", json_body(SETOSA)),
        200,
    ),
    Probe(
        "invalid",
        request_bytes("POST", "/predict", json_body({**SETOSA, "sepal_length": "5"})),
        422,
    ),
    Probe("malformed", request_bytes("POST", "/predict", b'{"sepal_length": 5.1,'), 400),
    Probe("health", request_bytes("GET", "/health"), 200, b'{"status":"ok"}'),
)


@dataclass(frozen=True)
class Outcome:
    """What one request of the load got: a status, or the error that stood in for one."""

    probe: str
    started: float
    ended: float
    status: int | None
    error: str | None
    ok: bool


class Load:
    """`concurrency` threads sending the mix round-robin, one connection per request, until stopped.

    An answer is ok when it has the probe's status and the same body as every other answer to
    that probe (the exact body where the probe gives one). Nothing is retried.
    """

    def __init__(
        self, port: int, concurrency: int, mix: tuple[Probe, ...] = MIX, timeout: float = 20.0
    ) -> None:
        self.port = port
        self.mix = mix
        self.timeout = timeout
        self.outcomes: list[Outcome] = []
        self._bodies = {p.name: p.body for p in mix}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(concurrency)
        ]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> list[Outcome]:
        """Stop the threads once their current request is answered; return every outcome."""
        self._stop.set()
        for thread in self._threads:
            thread.join(self.timeout + 5)
        return self.outcomes

    def _run(self, offset: int) -> None:
        i = offset
        while not self._stop.is_set():
            probe = self.mix[i % len(self.mix)]
            i += 1
            outcome = self.send(probe)
            with self._lock:
                self.outcomes.append(outcome)
            if outcome.error is not None:
                time.sleep(0.01)  # a refused connection returns at once: do not spin

    def send(self, probe: Probe) -> Outcome:
        started = time.monotonic()
        try:
            response = exchange(self.port, probe.data, timeout=self.timeout)
        except (NoResponse, OSError) as exc:
            return Outcome(probe.name, started, time.monotonic(), None, _error(exc), False)
        ended = time.monotonic()
        with self._lock:
            expected = self._bodies.get(probe.name)
            if expected is None and response.status == probe.status:
                expected = self._bodies[probe.name] = response.body
        ok = response.status == probe.status and response.body == expected
        return Outcome(probe.name, started, ended, response.status, None, ok)


def _error(exc: BaseException) -> str:
    if isinstance(exc, NoResponse):
        return "closed without an answer" if "closed" in str(exc) else "no answer in time"
    return type(exc).__name__


@dataclass
class Tally:
    """Counts and latencies of a list of outcomes."""

    outcomes: list[Outcome]

    @property
    def ok(self) -> int:
        return sum(o.ok for o in self.outcomes)

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.ok]

    def kinds(self) -> dict[str, int]:
        """Failures by kind: an unexpected status, or the socket error."""
        return dict(Counter(o.error or f"status {o.status}" for o in self.failed))

    def latency_ms(self, q: float) -> float:
        times = sorted(o.ended - o.started for o in self.outcomes if o.ok)
        return 1000 * times[min(len(times) - 1, int(q * len(times)))] if times else float("nan")

    def summary(self) -> str:
        return (
            f"{len(self.outcomes)} requests, {self.ok} ok, {len(self.failed)} failed "
            f"{self.kinds() or ''}; p50 {self.latency_ms(0.5):.1f} ms, "
            f"p99 {self.latency_ms(0.99):.1f} ms"
        ).rstrip()


@dataclass
class Report:
    """A scenario's measured facts, in order, and the invariants it broke (none, we hope)."""

    scenario: str
    facts: dict[str, object] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    log: str = ""

    def check(self, condition: bool, problem: str) -> None:
        if not condition:
            self.problems.append(problem)

    def text(self) -> str:
        lines = [f"== {self.scenario}: {'PASS' if not self.problems else 'FAIL'}"]
        lines += [f"   {key}: {value}" for key, value in self.facts.items()]
        lines += [f"   PROBLEM: {problem}" for problem in self.problems]
        return "\n".join(lines)
