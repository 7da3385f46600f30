"""Run the benchmarks and write docs/performance.md: `python -m bench.run [--quick] [--image NAME]`.

Each figure stands beside a baseline measured in the same run and interleaved with it, so a
busy machine slows both and their ratio still means something.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import itertools
import json
import os
import platform
import resource
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from bench import report
from bench.harness import ensure_wrk, run_wrk, wrk_version
from bench.tensors import one_client
from testkit import zoo
from testkit.processes import (
    JSON,
    ROOT,
    Server,
    container,
    flask_run,
    functions_framework_server,
    gunicorn,
    memory_kib,
    server_env,
)
from testkit.samples import batch_bodies, iris_rows, single_bodies, write_bodies


@dataclass(frozen=True)
class Plan:
    """How much to measure; every loop below is bounded by these counts."""

    reps: int  # interleaved repetitions of each single-row figure
    seconds: float  # length of one wrk run
    warmup: float  # untimed wrk run on each server before its figures
    batch_reps: int
    batch_seconds: float
    cold_reps: int
    traffic_seconds: float  # load per worker before each "after traffic" memory reading
    connections: tuple[int, ...] = (1, 16, 64)
    batch_sizes: tuple[int, ...] = (1, 100, 1_000, 10_000)
    batch_connections: int = 4  # two requests per shipped worker: neither ever waits for work
    memory_workers: tuple[int, ...] = (1, 2, 4)
    slow_seconds: float = 12.0  # the well-behaved client's run beside the slow connections
    # interleaved repetitions of each model kind's single-row figure (with 3, one kind's ratio
    # moved by about ±0.05 between runs of the same code)
    kind_reps: int = 5
    kind_seconds: float = 3.0  # length of one of its wrk runs


FULL = Plan(
    reps=5, seconds=5, warmup=2, batch_reps=3, batch_seconds=4, cold_reps=9, traffic_seconds=3
)
QUICK = Plan(
    reps=2,
    seconds=2,
    warmup=1,
    batch_reps=1,
    batch_seconds=2,
    cold_reps=2,
    traffic_seconds=1,
    slow_seconds=4.0,
    kind_reps=1,
    kind_seconds=2.0,
)


def service(workers: int | None = None, baseline: bool = False, stock: bool = False) -> Server:
    """gunicorn with one worker per CPU unless `workers`, serving the service or, with the same
    settings, bench/baselines.py (a positional app replaces gunicorn.conf.py's wsgi_app);
    `stock`: the baseline on gunicorn's stock sync workers instead of the project's."""
    if stock:
        env = {"GUNICORN_CMD_ARGS": "--worker-class sync"}
        name = "empty Flask endpoint, stock gunicorn sync workers"
        return gunicorn(env, workers=workers, app="bench.baselines:app", name=name)
    if baseline:
        return gunicorn(
            workers=workers, app="bench.baselines:app", name="empty Flask endpoint, gunicorn"
        )
    return gunicorn(workers=workers, name="service, gunicorn")


def function(baseline: bool = False, model: Path | None = None) -> Server:
    """The function under functions-framework (serving `model` if given), or the plain
    function beside it."""
    if baseline:
        return functions_framework_server(
            source="bench/plain_function.py",
            target="plain",
            name="plain function, functions-framework",
        )
    if model is not None:
        env = {"MODEL_PATH": str(model)}
        return functions_framework_server(env, name="100-tree forest, functions-framework")
    return functions_framework_server(name="function, functions-framework")


def in_container(
    engine: str,
    image: str,
    baseline: bool = False,
    workers: int | None = None,
    model: Path | None = None,
) -> Server:
    """`image` under `engine run` (serving `model`'s folder, mounted read-only and pinned, if
    given), or the same image serving bench/baselines.py.

    The baseline mounts bench/baselines.py in and points gunicorn's positional app at it: this
    assumes, as the project's `make run` does, that the image's working directory holds
    serve.py and gunicorn.conf.py and python is on its PATH.
    """
    env = {"WEB_CONCURRENCY": str(workers)} if workers else {}
    if model is not None:
        pin = hashlib.sha256(model.with_suffix(".json").read_bytes()).hexdigest()
        env |= {"MODEL_PATH": f"/models/{model.name}", "MODEL_SHA256": pin}
        options = ["-v", f"{model.parent}:/models:ro"]
        return container(engine, image, env, options=options, name="100-tree forest, container")
    if not baseline:
        return container(engine, image, env, name="service, container")
    mount = f"{ROOT / 'bench' / 'baselines.py'}:/opt/bench/bench_baselines.py:ro"
    return container(
        engine,
        image,
        {**env, "PYTHONPATH": "/opt/bench"},
        options=["-v", mount],
        command=["python", "serve.py", "bench_baselines:app"],
        name="empty Flask endpoint, container",
    )


def private_podman_conf(folder: Path) -> Path:
    """A podman config for this kind of host, as container/test.sh writes it; /etc is untouched.

    Root here lacks CAP_SYS_RESOURCE, so podman's default ulimits cannot be set: use the hard
    limits (nproc no higher than pid_max, to which podman lowers its own); crun refuses the
    hybrid cgroup layout, runc does not; netavark rather than the CNI plugins Debian lacks.
    """
    hard_nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    hard_nproc = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    nofile = 1_048_576 if hard_nofile == resource.RLIM_INFINITY else min(hard_nofile, 1_048_576)
    nproc = pid_max if hard_nproc == resource.RLIM_INFINITY else min(hard_nproc, pid_max)
    path = folder / "containers.conf"
    path.write_text(
        f'[containers]\ndefault_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]\n'
        '[network]\nnetwork_backend = "netavark"\n[engine]\nruntime = "runc"\n'
    )
    return path


@contextmanager
def running(*servers: Server, body: bytes) -> Iterator[tuple[Server, ...]]:
    """Start the servers, yield them, and stop every one of them whatever happens."""
    with ExitStack() as stack:
        for server in servers:
            stack.callback(server.stop)
            server.start(server.predict_path, body, deadline=60)
        yield servers


def measure(
    server: Server, bodies: Path, connections: int, seconds: float, close: bool = False
) -> dict[str, Any]:
    """One wrk run as a JSON-ready dict, printed as it lands so a long run shows progress."""
    load = run_wrk(server, bodies, connections, seconds, close)
    print(
        f"  {server.name:38} c={connections:<3}{' close' if close else ''} {load.rps:9.0f} req/s"
        f"  p50 {load.p50_ms:7.2f} ms  p99 {load.p99_ms:7.2f} ms",
        flush=True,
    )
    return {**asdict(load), "rps": load.rps}


@dataclass(frozen=True)
class Pair:
    """A target and its baseline, the single-row bodies they get, and at which connections."""

    target: Server
    baseline: Server
    bodies: Path
    probe: bytes
    connections: tuple[int, ...] | None = None  # None: the plan's
    close: bool = False  # every request asks for Connection: close, on both sides


def single_row(plan: Plan, pairs: dict[str, Pair]) -> dict[str, Any]:
    """Single-row /predict at each connection count, each target interleaved with its baseline.

    The order alternates between repetitions, so neither side always runs on a warmer machine.
    """
    results: dict[str, Any] = {}
    for key, pair in pairs.items():
        target, baseline, bodies, probe = pair.target, pair.baseline, pair.bodies, pair.probe
        print(f"single-row /predict: {target.name} vs {baseline.name}", flush=True)
        runs: dict[str, dict[str, list[dict[str, Any]]]] = {}
        with running(target, baseline, body=probe):
            check_single(target, probe)
            check_single(baseline, probe)
            engine = engine_of(target)
            for server in (target, baseline):
                run_wrk(server, bodies, 16, plan.warmup, pair.close)
            for connections in pair.connections or plan.connections:
                sides = runs.setdefault(str(connections), {"target": [], "baseline": []})
                for rep in range(plan.reps):
                    order = [("target", target), ("baseline", baseline)]
                    for side, server in order if rep % 2 == 0 else reversed(order):
                        load = measure(server, bodies, connections, plan.seconds, pair.close)
                        sides[side].append(load)
        results[key] = {
            "target": target.name,
            "baseline": baseline.name,
            "engine": engine,
            "close": pair.close,
            "runs": runs,
        }
    return results


def engine_of(server: Server) -> str | None:
    """The engine the server says serves its model (GET /metadata), if it says."""
    status, _, body = server.request("GET", "/metadata", timeout=30)
    return str(json.loads(body)["engine"]["name"]) if status == 200 else None


def model_kinds(plan: Plan, folder: Path) -> dict[str, Any]:
    """Every model kind of testkit/zoo.py, packaged as a user would and served by gunicorn as
    shipped (ENGINE=auto), single rows at 16 connections; with what its compiled form was
    verified with (or why it has none).

    Two baselines. Kept alive beside the empty endpoint on the project's own worker: the
    model's whole cost. Then every request asking to close, beside an empty Flask endpoint on
    gunicorn's stock sync workers (which close every connection): how issue 22's goal was
    measured when it was set (the service then closed every connection too)."""
    pairs, stock_pairs, facts = {}, {}, {}
    for name in zoo.BUILDERS:
        specimen = zoo.build(name, folder / "kinds" / name)
        manifest = json.loads(specimen.path.with_suffix(".json").read_text())
        rows = [json.dumps(row) for row in specimen.rows]
        bodies, probe = write_bodies(folder, f"kind-{name}", rows), rows[0].encode()
        env = {"MODEL_PATH": str(specimen.path)}
        target = gunicorn(env, workers=None, name=name)
        pairs[name] = Pair(target, service(baseline=True), bodies, probe, (16,))
        target = gunicorn(env, workers=None, name=f"{name}, Connection: close")
        stock_pairs[name] = Pair(target, service(stock=True), bodies, probe, (16,), close=True)
        compiled = manifest["compiled"]
        kept = ("trees", "tolerance", "verification", "error")
        facts[name] = {
            "estimator": manifest["estimator"],
            "compiled": {k: compiled[k] for k in kept if k in compiled},
        }
    kind_plan = replace(plan, reps=plan.kind_reps, seconds=plan.kind_seconds)
    measured = single_row(kind_plan, pairs)
    against_stock = single_row(kind_plan, stock_pairs)
    return {name: {**measured[name], **facts[name], "stock": against_stock[name]} for name in pairs}


def forest_pairs(folder: Path, engine: str, image: str | None) -> dict[str, Pair]:
    """A 100-tree random forest on 30 features, packaged as a user would (testkit/zoo.py), at
    16 connections beside the empty endpoint: served compiled, then by scikit-learn itself;
    and compiled by the function beside the plain function, and by the image (if given)
    beside the image's empty endpoint."""
    forest = zoo.build("forest-30", folder / "forest")
    bodies = write_bodies(folder, "forest-single", [json.dumps(row) for row in forest.rows])
    probe = json.dumps(forest.rows[0]).encode()
    pairs = {}
    for key, serving, label in (
        ("forest", "auto", "100-tree forest, gunicorn"),
        ("forest, scikit-learn", "sklearn", "100-tree forest, scikit-learn engine, gunicorn"),
    ):
        env = {"MODEL_PATH": str(forest.path), "ENGINE": serving}
        target = gunicorn(env, workers=None, name=label)
        pairs[key] = Pair(target, service(baseline=True), bodies, probe, (16,))
    pairs["forest, function"] = Pair(
        function(model=forest.path), function(baseline=True), bodies, probe, (16,)
    )
    if image:
        target = in_container(engine, image, model=forest.path)
        baseline = in_container(engine, image, baseline=True)
        pairs["forest, container"] = Pair(target, baseline, bodies, probe, (16,))
    return pairs


def check_single(server: Server, body: bytes) -> None:
    """The server answers 200 with a prediction, so the load measures answers, not errors."""
    status, _, answer = server.request("POST", server.predict_path, body, JSON, timeout=30)
    if status != 200 or "prediction" not in json.loads(answer):
        raise RuntimeError(f"{server.name} answered {status}: {answer[:200]!r}")


def batches(
    plan: Plan, rows: list[list[float]], folder: Path, probe: bytes
) -> list[dict[str, Any]]:
    """Rows per second through the shipped gunicorn for each batch size, objects and arrays."""
    print("batches: service, gunicorn", flush=True)
    cases: list[dict[str, Any]] = []
    for size, shape in itertools.product(plan.batch_sizes, ("objects", "arrays")):
        bodies = batch_bodies(rows, size, shape)
        path = write_bodies(folder, f"batch-{size}-{shape}", bodies)
        cases.append({"size": size, "shape": shape, "bodies": path, "probe": bodies[0], "runs": []})
    with running(service(), body=probe) as (server,):
        for case in cases:
            body = case["probe"].encode()
            status, _, answer = server.request("POST", server.predict_path, body, JSON, timeout=30)
            if status != 200 or len(json.loads(answer)["predictions"]) != case["size"]:
                raise RuntimeError(f"batch of {case['size']} {case['shape']}: {status}")
        run_wrk(server, cases[-1]["bodies"], plan.batch_connections, plan.warmup)
        for _rep, case in itertools.product(range(plan.batch_reps), cases):
            load = measure(server, case["bodies"], plan.batch_connections, plan.batch_seconds)
            case["runs"].append({**load, "rows_per_s": load["rps"] * case["size"]})
    return [{k: v for k, v in c.items() if k not in ("bodies", "probe")} for c in cases]


def tensors(plan: Plan, folder: Path, probe: bytes) -> list[dict[str, Any]]:
    """Rows per second from one client through the shipped gunicorn: 10,000 rows as a V2 binary
    tensor, and as /predict JSON arrays (bench/tensors.py)."""
    with running(service(), body=probe) as (server,):
        return one_client(server, plan.batch_reps, plan.batch_seconds, plan.warmup, folder)


def own_model_batches(plan: Plan, folder: Path) -> dict[str, Any]:
    """Rows per second for 10,000 mixed-type objects (integers, numbers, strings, nulls) through
    gunicorn serving testkit's column-transformer model: a pipeline fitted on a DataFrame."""
    print("batches: your own model (column-transformer), gunicorn", flush=True)
    specimen = zoo.build("column-transformer", folder / "own-model")
    rows = specimen.rows
    bodies = [
        json.dumps({"instances": [rows[(v * 7 + i) % len(rows)] for i in range(10_000)]})
        for v in range(4)
    ]
    path = write_bodies(folder, "own-model-batches", bodies)
    result: dict[str, Any] = {"model": specimen.name, "size": 10_000, "runs": []}
    own = gunicorn({"MODEL_PATH": str(specimen.path)}, workers=None, name="own model, gunicorn")
    with running(own, body=json.dumps(rows[0]).encode()) as (server,):
        status, _, answer = server.request("POST", server.predict_path, bodies[0].encode(), JSON)
        if status != 200 or len(json.loads(answer)["predictions"]) != 10_000:
            raise RuntimeError(f"own model batch: {status} {answer[:200]!r}")
        run_wrk(server, path, plan.batch_connections, plan.warmup)
        for _ in range(plan.batch_reps):
            load = measure(server, path, plan.batch_connections, plan.batch_seconds)
            result["runs"].append({**load, "rows_per_s": load["rps"] * 10_000})
    return result


# The scikit-learn floor: a bare python that imports what serving the pickle takes (werkzeug
# comes with flask; the pipeline's own sklearn modules with the pickle) and unpickles it.
# pandas is kept out as the scikit-learn engine keeps it out for a model not fitted on a
# DataFrame (scikit-learn imports it whenever it is installed): the floor is no slower than
# the fallback itself. os._exit skips the teardown, which no server pays before its answer.
FLOOR = (
    "import sys; sys.modules['pandas'] = None; import flask, marshmallow, numpy, sklearn, joblib,"
    " os; joblib.load('model.pkl'); os._exit(0)"
)


def time_to_exit(argv: list[str]) -> float:
    """Seconds from spawn to a successful exit."""
    started = time.perf_counter()
    subprocess.run(argv, cwd=ROOT, env=server_env({"OMP_NUM_THREADS": "1"}), check=True, timeout=60)
    return time.perf_counter() - started


def cold_start(plan: Plan, probe: bytes, engine: str, image: str | None) -> dict[str, list[float]]:
    """Spawn to first successful POST /predict for each target, beside the import floor.

    The targets take turns within each repetition; a first, untimed round warms the page cache.
    """
    print("cold start", flush=True)
    sklearn = {"ENGINE": "sklearn"}
    targets: dict[str, Callable[[], Server]] = {
        "flask run": flask_run,
        "gunicorn, 1 worker": lambda: service(workers=1),
        "functions-framework": function,
        "gunicorn, 1 worker, scikit-learn engine": lambda: gunicorn(sklearn, workers=1),
        "functions-framework, scikit-learn engine": lambda: functions_framework_server(sklearn),
    }
    if image:
        targets["container, 1 worker"] = lambda: in_container(engine, image, workers=1)
    results: dict[str, list[float]] = {"floor: imports + unpickle": [], "python -c pass": []}
    results.update({name: [] for name in targets})
    for rep in range(plan.cold_reps + 1):
        timings = {
            "floor: imports + unpickle": time_to_exit([sys.executable, "-c", FLOOR]),
            "python -c pass": time_to_exit([sys.executable, "-c", "pass"]),
        }
        for name, make in targets.items():
            server = make()
            try:
                timings[name] = server.spawn().wait_ready(server.predict_path, probe, 60)
            finally:
                server.stop()
        if rep:
            for name, seconds in timings.items():
                results[name].append(seconds)
            print("  " + "  ".join(f"{k} {v:.3f} s" for k, v in timings.items()), flush=True)
    return results


def memory(plan: Plan, single: Path, batch: Path, probe: bytes) -> list[dict[str, Any]]:
    """PSS and USS of the gunicorn master and each worker: idle, then after traffic.

    The load lasts `traffic_seconds` per worker, so every worker count sees as many requests
    per worker: a worker's memory grows with the requests it has served, not with the clock.
    """
    print("memory", flush=True)
    results = []
    for workers in plan.memory_workers:
        with running(service(workers), body=probe) as (server,):
            deadline = time.monotonic() + 30
            while len(server.pids()[1]) < workers and time.monotonic() < deadline:
                time.sleep(0.1)
            states: dict[str, dict[str, Any]] = {}
            for state, load in (
                ("idle", None),
                ("after single rows", (single, 16)),
                ("after 10,000-object batches", (batch, plan.batch_connections)),
            ):
                if load:
                    run_wrk(server, load[0], load[1], plan.traffic_seconds * workers)
                time.sleep(1)
                master, pids = server.pids()
                states[state] = {
                    "master": memory_kib(master),
                    "workers": [memory_kib(pid) for pid in pids],
                }
            worker_uss = [w["uss"] // 1024 for w in states["after single rows"]["workers"]]
            print(f"  {workers} workers: USS after traffic {worker_uss} MiB", flush=True)
            results.append({"workers": workers, "states": states})
    return results


# What the servers run: a change to any of these during a run mixes two programs' figures.
SERVED = (
    "webapp/**/*.py",
    "gcf/*.py",
    "wsgi.py",
    "gunicorn.conf.py",
    "model.*",
    "requirements.txt",
)


def faults(plan: Plan, engine: str, image: str | None, probe: bytes) -> dict[str, Any]:
    """Slow clients beside a well-behaved one, the function's slow-client limit, a SIGTERM drain.

    gunicorn runs with 3 s read deadlines (so they pass within the run) and the container with
    its defaults; the function, which has none, gets more slow connections until the
    well-behaved client goes unserved. Each entry is a scenario's facts and broken invariants.
    """
    from bench.faults import sigterm_under_load, slow_clients
    from bench.load import Report

    def facts(report: Report) -> dict[str, Any]:
        print(report.text(), flush=True)
        return {"scenario": report.scenario, "facts": report.facts, "problems": report.problems}

    print("faults", flush=True)
    seconds = plan.slow_seconds
    found: dict[str, Any] = {
        "slow_clients": [
            facts(slow_clients("gunicorn", 100, kind, seconds, deadline=3))
            for kind in ("headers", "body")
        ]
    }
    if image:
        with running(in_container(engine, image), body=probe) as (server,):
            found["slow_clients"] += [
                facts(slow_clients("container", 100, kind, seconds, 10, port=server.port))
                for kind in ("headers", "body")
            ]
    limit = []
    for slow in (2, 4, 8, 16):
        limit.append(facts(slow_clients("function", slow, "headers", min(seconds, 4.0))))
        if limit[-1]["problems"]:
            break
    found["function_limit"] = limit
    found["sigterm"] = facts(sigterm_under_load(workers=2, concurrency=4, slow=2))
    return found


def served_digest() -> str:
    """A short sha256 of the served files, taken before and after each section of the run."""
    digest = hashlib.sha256()
    for path in sorted({p for pattern in SERVED for p in ROOT.glob(pattern)}):
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def image_id(engine: str, image: str) -> str:
    """The image's id and creation time, since a tag can move between runs."""
    done = subprocess.run(
        [engine, "image", "inspect", "--format", "{{.Id}} {{.Created}}", image],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return done.stdout.strip()[:12] + done.stdout.strip()[64:] if done.returncode == 0 else "?"


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    packages = ["flask", "werkzeug", "gunicorn", "marshmallow", "functions-framework"]
    packages += ["scikit-learn", "numpy", "scipy", "joblib"]
    git = subprocess.run(
        ["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True
    )
    return {
        "cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "versions": {p: importlib.metadata.version(p) for p in packages},
        "wrk": wrk_version(),
        "commit": git.stdout.strip() or "unknown",
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "load_average_start": os.getloadavg(),
    }


def main(argv: list[str] | None = None) -> None:
    """Measure everything the plan says, then write the report."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a ~7-minute smoke run")
    parser.add_argument("--image", help="also measure this container image (podman)")
    parser.add_argument("--engine", default="podman", help="container engine (default podman)")
    parser.add_argument("--output", type=Path, default=ROOT / "docs", help="report folder")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    # SIGTERM, like Ctrl-C, unwinds through the `finally` blocks that stop the servers.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    ensure_wrk()
    started = time.monotonic()
    results: dict[str, Any] = {
        "command": "python -m bench.run " + shlex.join(argv if argv is not None else sys.argv[1:]),
        "plan": asdict(plan),
        "floor": f'python -c "{FLOOR}"',
        "machine": machine(),
    }
    rows = iris_rows()
    singles = single_bodies(rows)
    probe = singles[0].encode()
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        folder = Path(tmp)
        single_path = write_bodies(folder, "single", singles)
        if args.image and args.engine == "podman" and "CONTAINERS_CONF" not in os.environ:
            os.environ["CONTAINERS_CONF"] = str(private_podman_conf(folder))
        # Kept alive against the stock sync workers (which close every connection); then both
        # asked to close; then against the empty endpoint on this project's own worker.
        pairs = {
            "gunicorn": Pair(service(), service(stock=True), single_path, probe),
            "gunicorn, Connection: close": Pair(
                service(), service(stock=True), single_path, probe, (16,), close=True
            ),
            "gunicorn, same worker": Pair(service(), service(baseline=True), single_path, probe),
            "function": Pair(function(), function(baseline=True), single_path, probe),
        }
        if args.image:
            results["image"] = f"{args.image} ({image_id(args.engine, args.image)})"
            pairs["container"] = Pair(
                in_container(args.engine, args.image),
                in_container(args.engine, args.image, baseline=True),
                single_path,
                probe,
            )
        pairs.update(forest_pairs(folder, args.engine, args.image))
        batch_path = write_bodies(folder, "memory-batch", batch_bodies(rows, 10_000, "objects"))
        sections: dict[str, Callable[[], Any]] = {
            "single": lambda: single_row(plan, pairs),
            "kinds": lambda: model_kinds(plan, folder),
            "batches": lambda: batches(plan, rows, folder, probe),
            "tensors": lambda: tensors(plan, folder, probe),
            "own_model_batches": lambda: own_model_batches(plan, folder),
            "cold_start": lambda: cold_start(plan, probe, args.engine, args.image),
            "memory": lambda: memory(plan, single_path, batch_path, probe),
            "faults": lambda: faults(plan, args.engine, args.image, probe),
        }
        results["served"] = {}
        for name, measure_section in sections.items():
            before = served_digest()
            results[name] = measure_section()
            results["served"][name] = [before, served_digest()]
    results["machine"]["load_average_end"] = os.getloadavg()
    results["machine"]["minutes"] = round((time.monotonic() - started) / 60, 1)
    report.write(results, args.output)
    print(f"wrote {args.output / 'performance.md'} in {results['machine']['minutes']} min")


if __name__ == "__main__":
    main()
