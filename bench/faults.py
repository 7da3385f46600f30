"""Faults under load against real gunicorn: `python -m bench.faults [--help]`.

Five scenarios, each with its invariant: SIGKILL a worker (nothing lost but what that worker
held, and it is respawned), SIGTERM the master (in-flight requests complete, exit 0 within
10 s), a request slower than its body deadline (a 408, no worker stuck), max_requests
recycling (nothing lost), and a hundred slow clients beside a well-behaved one (it is served
throughout, the slow ones are cut off at their deadlines, no worker is lost).
tests/service/test_faults.py runs the same code briefly. The load comes from bench/load.py, what
the workers hold from bench/sockets.py; the slow clients are here, beside their scenarios.
Everything talks to 127.0.0.1, and only processes started here are signalled, by pid.
"""

from __future__ import annotations

import argparse
import os
import random
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: `python bench/faults.py`
    sys.path.insert(0, str(ROOT))

from bench.load import MIX, Load, Report, Tally, json_body  # noqa: E402
from bench.sockets import (  # noqa: E402
    RESPAWN_DEADLINE,
    all_workers,
    client_ports,
    stopped,
    worker_holding,
)
from testkit.processes import (  # noqa: E402
    Server,
    children,
    functions_framework_server,
    gunicorn,
    memory_kib,
    wait_until,
)
from testkit.rawhttp import NoResponse, read_response, request_bytes  # noqa: E402
from testkit.samples import SETOSA  # noqa: E402

SIGTERM_DEADLINE = 10.0  # Cloud Run's grace period after SIGTERM


@contextmanager
def serving(env: Mapping[str, str]) -> Iterator[Server]:
    """gunicorn as `make run` starts it, with `env`, all its workers up; SIGTERMed at the end."""
    server = gunicorn(env).start()
    try:
        all_workers(server, int(env["WEB_CONCURRENCY"]))
        yield server
    finally:
        server.stop()  # also closes its log; a no-op signal if it has exited already


class SlowClient:
    """A client that sends the headers of a valid POST /predict, then its body a byte at a time.

    The request is honest and valid; only its pace is slow, as on a bad mobile link.
    """

    def __init__(self, port: int, padding: int = 0) -> None:
        body = json_body(SETOSA) + b" " * padding
        data = request_bytes("POST", "/predict", body)
        split = len(data) - len(body) + 1  # the headers and the body's first byte
        self.head, self.rest = data[:split], data[split:]
        self.opened = time.monotonic()
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.sendall(self.head)
        self.port = self.sock.getsockname()[1]

    def dribble(self, pause: float, timeout: float) -> tuple[str, float]:
        """Send the rest a byte every `pause` s; stop early if the server answers or closes.

        Returns what the client saw ("200 application/json", "closed", "no answer") and how
        long after it connected.
        """
        rest = self.rest
        try:
            while rest:
                readable, _, _ = select.select([self.sock], [], [], pause)
                if readable:
                    break
                self.sock.sendall(rest[:1])
                rest = rest[1:]
        except OSError:
            pass  # the server closed the connection: read what it said
        try:
            response = read_response(self.sock, timeout=timeout)
        except NoResponse as exc:
            outcome = "closed" if "closed" in str(exc) else "no answer"
        else:
            outcome = f"{response.status} {response.content_type}"
        finally:
            self.sock.close()
        return outcome, time.monotonic() - self.opened


def sigkill_under_load(
    workers: int = 2, concurrency: int = 8, kills: int = 1, interval: float = 2.0
) -> Report:
    """SIGKILL a worker under load, `kills` times `interval` s apart.

    Invariant: requests lost <= those in flight on the killed worker, the service keeps
    answering, and a new worker replaces the killed one. To count exactly what the victim
    holds, it is SIGSTOPped (it can accept nothing more), counted from /proc, then SIGKILLed.
    """
    report = Report("SIGKILL a worker under load")
    with serving({"WEB_CONCURRENCY": str(workers)}) as server:
        assert server.proc is not None
        master = server.proc.pid
        in_flight = 0
        respawn_times = []
        with Load(server.port, concurrency) as load:
            time.sleep(interval / 2)
            for _ in range(kills):
                victim = random.choice(children(master))
                os.kill(victim, signal.SIGSTOP)
                wait_until(lambda v=victim: stopped(v), RESPAWN_DEADLINE)  # or it may still accept
                held = len(client_ports(victim, server.port))
                os.kill(victim, signal.SIGKILL)
                killed = time.monotonic()
                in_flight += held

                def replaced(victim: int = victim) -> bool:
                    pids = children(master)
                    return victim not in pids and len(pids) == workers

                respawned = wait_until(replaced, RESPAWN_DEADLINE)
                respawn_times.append(time.monotonic() - killed)
                report.check(respawned, f"worker {victim} not replaced in {RESPAWN_DEADLINE} s")
                time.sleep(interval)
            outcomes = load.stop()
        after = [o for o in outcomes if o.started > killed]
        tally = Tally(outcomes)
        report.facts.update(
            workers=workers,
            concurrency=concurrency,
            kills=kills,
            load=tally.summary(),
            in_flight_on_killed_workers=in_flight,
            lost=len(tally.failed),
            respawn_seconds=", ".join(f"{t:.2f}" for t in respawn_times),
            ok_after_last_kill=sum(o.ok for o in after),
        )
        report.check(len(tally.failed) <= in_flight, f"lost {len(tally.failed)} > {in_flight}")
        report.check(any(o.ok for o in after), "no request answered after the kill")
        report.check(server.proc.poll() is None, "the master died")
        code = server.stop()
        report.check(code == 0, f"master exited {code} on SIGTERM")
        report.log = server.output()
    return report


def sigterm_under_load(
    workers: int = 2, concurrency: int = 4, slow: int = 1, dribble: float = 2.0
) -> Report:
    """SIGTERM the master while `slow` requests are in flight (their bodies still arriving).

    Invariant: every in-flight request completes with its answer, no answer is a 5xx, and the
    master exits 0 within 10 s. Requests still queued in the listen backlog, never accepted,
    may be refused or reset: the report counts them apart.
    """
    report = Report("SIGTERM the master under load")
    with serving({"WEB_CONCURRENCY": str(workers)}) as server:
        assert server.proc is not None
        with Load(server.port, concurrency) as load:
            time.sleep(0.5)
            clients = [SlowClient(server.port) for _ in range(slow)]
            holders = [worker_holding(server, c.port) for c in clients]
            report.check(None not in holders, "a slow request was never accepted")
            server.proc.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            pause = dribble / max(1, len(clients[0].rest))
            results: list[tuple[str, float]] = [("", 0.0)] * len(clients)

            def finish(i: int) -> None:
                results[i] = clients[i].dribble(pause, timeout=15)

            threads = [threading.Thread(target=finish, args=(i,)) for i in range(len(clients))]
            for thread in threads:
                thread.start()
            try:
                code: int | None = server.proc.wait(timeout=SIGTERM_DEADLINE + 5)
            except subprocess.TimeoutExpired:
                code = None
            exited = time.monotonic() - signalled
            outcomes = load.stop()  # now, or it only counts refusals from here on
            for thread in threads:
                thread.join(20)
        answered = [o for o in outcomes if o.status is not None]
        before = [o for o in outcomes if o.ended < signalled]
        tally = Tally(outcomes)
        report.facts.update(
            workers=workers,
            concurrency=concurrency,
            in_flight_slow_requests=f"{slow}, held by workers {holders}",
            slow_request_answers=", ".join(f"{r} {t:.2f} s after connecting" for r, t in results),
            master_exit=f"status {code} {exited:.2f} s after SIGTERM",
            exit_seconds=round(exited, 2),
            load=tally.summary(),
            load_failures_before_sigterm=sum(not o.ok for o in before),
            load_not_answered=f"{len(outcomes) - len(answered)}, all after SIGTERM: refused "
            "once the listener closed, or reset while queued in its backlog (a worker "
            "finishes every connection it accepts)",
        )
        report.check(all(r.startswith("200 ") for r, _ in results), "an in-flight request failed")
        report.check(code == 0, f"master exited with {code}")
        report.check(exited <= SIGTERM_DEADLINE, f"master took {exited:.1f} s to exit")
        report.check(all(o.ok for o in answered), "an answer to the load was not the right one")
        report.check(all(o.ok for o in before), "the load failed before SIGTERM")
        report.log = server.output()
    return report


def request_past_its_deadline(
    workers: int = 2, body_timeout: int = 3, concurrency: int = 2, stall: float = 15.0
) -> Report:
    """A valid request whose body takes `stall` s to arrive, with GUNICORN_BODY_TIMEOUT short.

    The worker reads bodies in its selector loop, so the slow one holds no worker: the client
    gets a JSON 408 once the body deadline passes, and no worker is stuck or replaced.
    Invariant: that answer (not a hang, not a success), the same workers before and after,
    and the rest of the load served meanwhile without a failure.
    """
    report = Report("a request past its body deadline")
    env = {"WEB_CONCURRENCY": str(workers), "GUNICORN_BODY_TIMEOUT": str(body_timeout)}
    with serving(env) as server:
        assert server.proc is not None
        master = server.proc.pid
        before = set(all_workers(server, workers))
        with Load(server.port, concurrency) as load:
            time.sleep(0.5)
            client = SlowClient(server.port, padding=int(stall / 0.5))
            holder = worker_holding(server, client.port)
            seen, seconds = client.dribble(pause=0.5, timeout=body_timeout + 20)
            time.sleep(0.5)
            outcomes = load.stop()
        tally = Tally(outcomes)
        after = set(children(master))
        report.facts.update(
            workers=workers,
            body_timeout=f"{body_timeout} s",
            slow_request=f"body paced over {stall:.0f} s, read by worker {holder}",
            slow_client_saw=f"{seen}, {seconds:.2f} s after it connected",
            workers_before_and_after=f"{sorted(before)} {sorted(after)}",
            load=tally.summary(),
        )
        report.check(holder is not None, "the slow request was never accepted")
        report.check(seen == "408 application/json", f"the slow client saw {seen}, not a 408")
        report.check(seconds < stall, "the slow client was not cut off before its body ended")
        report.check(before == after, "a worker was replaced")
        report.check(not tally.failed, "the load failed while a request was being read")
        report.check(server.stop() == 0, "master did not exit 0 on SIGTERM")
        report.log = server.output()
    return report


class Tricklers:
    """`count` connections that each send a valid request one byte every `pause` s, from one
    thread, until the server closes them or they are stopped.

    kind "headers" trickles the request from its first byte; kind "body" sends the headers at
    once, announcing a large Content-Length, and trickles the body.
    """

    def __init__(self, port: int, count: int, kind: str, pause: float = 0.5) -> None:
        body = json_body(SETOSA).ljust(1_000_000)
        data = request_bytes("POST", "/predict", body)
        head = data.index(b"\r\n\r\n") + 4
        self.first, self.rest = (b"", data) if kind == "headers" else (data[:head], data[head:])
        self.port, self.count, self.pause = port, count, pause
        self.opened: dict[socket.socket, float] = {}
        self.sent: dict[socket.socket, int] = {}
        self.closed: list[tuple[float, str]] = []  # seconds open, and what the server said
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Tricklers:
        for _ in range(self.count):
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
            sock.sendall(self.first)
            sock.setblocking(False)
            self.opened[sock] = time.monotonic()
            self.sent[sock] = 0
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        for sock in list(self.opened):
            sock.close()

    @property
    def still_open(self) -> int:
        return len(self.opened)

    def _run(self) -> None:
        while not self._stop.wait(self.pause) and self.opened:
            readable, _, _ = select.select(list(self.opened), [], [], 0)
            for sock in readable:
                self._closed(sock)
            for sock in list(self.opened):
                try:
                    sock.send(self.rest[self.sent[sock] : self.sent[sock] + 1])
                    self.sent[sock] += 1
                except OSError:
                    self._closed(sock)

    def _closed(self, sock: socket.socket) -> None:
        try:
            answer = sock.recv(4096)
        except OSError:
            answer = b""
        said = answer.split(b"\r\n", 1)[0].decode("latin-1") or "closed"
        self.closed.append((time.monotonic() - self.opened.pop(sock), said))
        sock.close()


def slow_clients(
    target: str = "gunicorn",
    slow: int = 100,
    kind: str = "headers",
    duration: float = 6.0,
    deadline: int = 3,
    workers: int = 2,
    port: int | None = None,
    gunicorn_args: str = "",
) -> Report:
    """`slow` connections trickling requests, and one well-behaved client beside them.

    The well-behaved client sends `POST /predict` after `POST /predict` for `duration` s, each
    with a 5 s timeout. Invariants: every one of its requests is answered, and right; the
    server closes every slow connection once its deadline (`deadline` s for the headers and
    for the body) has passed; no worker is lost. The latencies are reported against the goals
    (every answer within 1 s, p99 within 100 ms), which a test does not assert: the machine
    may be busy. `target` "function" runs functions-framework, which has no deadlines; with
    `port`, a server started elsewhere with those deadlines (the container) is measured.
    `gunicorn_args` go to gunicorn as GUNICORN_CMD_ARGS: another worker class, to compare.
    """
    report = Report(f"{slow} slow clients trickling {kind} ({target})")
    if port is not None:
        _trickle_beside(report, port, slow, kind, duration, deadline)
        return report
    env = {
        "WEB_CONCURRENCY": str(workers),
        "GUNICORN_HEADER_TIMEOUT": str(deadline),
        "GUNICORN_BODY_TIMEOUT": str(deadline),
        **({"GUNICORN_CMD_ARGS": gunicorn_args} if gunicorn_args else {}),
    }
    server = (gunicorn if target == "gunicorn" else functions_framework_server)(env).start()
    try:
        assert server.proc is not None
        master = server.proc.pid
        before = set(all_workers(server, workers)) if target == "gunicorn" else set()
        memory = {pid: memory_kib(pid)["uss"] for pid in before}
        _trickle_beside(report, server.port, slow, kind, duration, deadline, target == "gunicorn")
        after = set(children(master)) if target == "gunicorn" else set()
        grown = {pid: memory_kib(pid)["uss"] - kib for pid, kib in memory.items() if pid in after}
        report.facts["worker_uss_growth_kib"] = grown or "n/a"
        if target == "gunicorn":
            report.check(before == after, f"workers changed: {sorted(before)} -> {sorted(after)}")
    finally:
        code = server.stop()
    report.check(code == 0, f"the server exited {code} on SIGTERM")
    report.log = server.output()
    return report


def _trickle_beside(
    report: Report,
    port: int,
    slow: int,
    kind: str,
    duration: float,
    deadline: int,
    deadlines_enforced: bool = True,
) -> None:
    """Run the slow connections and the well-behaved client; add what they saw to `report`."""
    good = Load(port, 1, mix=MIX[:1], timeout=5.0)
    with Tricklers(port, slow, kind) as tricklers:
        time.sleep(0.5)  # every slow connection is open and has sent something
        with good:
            time.sleep(duration)
        open_at_end = tricklers.still_open
        closed = list(tricklers.closed)
    outcomes = good.stop()
    tally = Tally(outcomes)
    slowest = max((o.ended - o.started for o in outcomes), default=float("nan"))
    report.facts.update(
        slowest_ms=round(1000 * slowest, 1),
        p99_ms=round(tally.latency_ms(0.99), 1),
        well_behaved_client=tally.summary() + f", slowest {1000 * slowest:.1f} ms",
        goals="every answer within 1 s, p99 within 100 ms: "
        + ("met" if slowest <= 1.0 and tally.latency_ms(0.99) <= 100 else "MISSED"),
        slow_connections_closed_by_the_server=f"{len(closed)} of {slow}, "
        + (f"{min(t for t, _ in closed):.1f}-{max(t for t, _ in closed):.1f} s after "
           f"they opened, saying {sorted(set(s for _, s in closed))}" if closed else "none"),
    )  # fmt: skip
    report.check(bool(outcomes) and not tally.failed, "the well-behaved client was not served")
    if deadlines_enforced and duration > deadline + 2:
        outlived = f"{open_at_end} slow connections outlived their {deadline} s"
        report.check(open_at_end == 0, outlived)


def max_requests_recycling(
    workers: int = 2, concurrency: int = 4, duration: float = 4.0, max_requests: int = 50
) -> Report:
    """Load with gunicorn's max_requests (+ jitter) set: workers recycle, nothing may be lost.

    gunicorn.conf.py does not set max_requests; GUNICORN_CMD_ARGS turns it on, as an operator
    fighting a leak would.
    """
    report = Report("max_requests recycling under load")
    args = f"--max-requests {max_requests} --max-requests-jitter {max(1, max_requests // 5)}"
    env = {"WEB_CONCURRENCY": str(workers), "GUNICORN_CMD_ARGS": args}
    with serving(env) as server:
        assert server.proc is not None
        master = server.proc.pid
        seen: set[int] = set(children(master))
        with Load(server.port, concurrency) as load:
            until = time.monotonic() + duration
            while time.monotonic() < until:
                seen.update(children(master))
                time.sleep(0.01)
            outcomes = load.stop()
        tally = Tally(outcomes)
        code = server.stop()
        output = server.output()
        recycled = output.count("Autorestarting worker")
        report.facts.update(
            workers=workers,
            concurrency=concurrency,
            max_requests=args,
            load=tally.summary(),
            workers_recycled=recycled,
            distinct_worker_pids=len(seen),
        )
        report.check(not tally.failed, f"{len(tally.failed)} requests lost to recycling")
        report.check(recycled >= 1, "no worker was recycled: the run was too short")
        report.check(code == 0, f"master exited {code} on SIGTERM")
        report.log = output
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--scenario",
        choices=["all", "sigkill", "sigterm", "deadline", "max-requests", "slow-clients"],
        default="all",
    )
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    parser.add_argument("--concurrency", type=int, default=16, help="load connections")
    parser.add_argument("--kills", type=int, default=10, help="SIGKILLs, one every --interval")
    parser.add_argument("--interval", type=float, default=3.0, help="seconds between kills")
    parser.add_argument("--repeat", type=int, default=3, help="SIGTERM and deadline runs")
    parser.add_argument(
        "--duration", type=float, default=30.0, help="max-requests and slow-client runs, s"
    )
    parser.add_argument("--slow", type=int, default=100, help="slow-client connections")
    parser.add_argument(
        "--target",
        choices=["gunicorn", "function", "container"],
        default="gunicorn",
        help="slow clients against: a gunicorn or function started here, or --port's container",
    )
    parser.add_argument("--deadline", type=int, default=3, help="slow clients' read deadlines, s")
    parser.add_argument(
        "--port", type=int, help="slow clients against a server already running on 127.0.0.1"
    )
    parser.add_argument(
        "--gunicorn-args", default="", help='GUNICORN_CMD_ARGS for the slow-client runs: "-k sync"'
    )
    parser.add_argument("--show-logs", action="store_true", help="print server logs of failures")
    args = parser.parse_args(argv)
    if args.kills < 1 or args.repeat < 1 or args.workers < 1:
        parser.error("--kills, --repeat and --workers must be at least 1")
    if (args.target == "container") != (args.port is not None):
        parser.error("--target container goes with --port, and --port with it")

    runs: list[Callable[[], Report]] = []
    if args.scenario in ("all", "sigkill"):
        runs.append(
            lambda: sigkill_under_load(args.workers, args.concurrency, args.kills, args.interval)
        )
    if args.scenario in ("all", "sigterm"):
        runs += [
            lambda: sigterm_under_load(args.workers + 1, args.concurrency, slow=args.workers)
        ] * args.repeat
    if args.scenario in ("all", "deadline"):
        runs += [lambda: request_past_its_deadline(args.workers)] * args.repeat
    if args.scenario in ("all", "slow-clients"):
        runs += [
            lambda kind=kind: slow_clients(
                args.target,
                args.slow,
                kind,
                args.duration,
                args.deadline,
                args.workers,
                args.port,
                args.gunicorn_args,
            )
            for kind in ("headers", "body")
        ]
    if args.scenario in ("all", "max-requests"):
        runs.append(
            lambda: max_requests_recycling(args.workers, args.concurrency, args.duration, 200)
        )
    failed = 0
    for run in runs:
        started = time.monotonic()
        report = run()
        print(f"{report.text()}\n   (scenario took {time.monotonic() - started:.1f} s)", flush=True)
        if report.problems:
            failed += 1
            if args.show_logs:
                print(report.log)
    print(f"\n{len(runs) - failed} of {len(runs)} scenario runs kept their invariants.")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
