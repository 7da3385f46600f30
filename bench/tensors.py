"""10,000 rows a request from one client: a V2 binary tensor beside the same rows as JSON arrays.

`python -m bench.tensors [--quick] [--against DIR]` measures it alone, on gunicorn as `make run`
starts it, and prints rows/s; with --against, beside another checkout's code (say main's, from
`git archive main | tar -x -C DIR`), runs interleaved. `make bench` runs the same measurement
(run.py) and reports it. The tensor is Triton's binary tensor extension as tritonclient sends
it: an FP64 [N, 4] input whose bytes follow the JSON header, predictions asked for in binary.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

from bench.harness import ensure_wrk, run_tensors, run_wrk
from bench.report import spread
from testkit.processes import JSON, Server, gunicorn
from testkit.samples import batch_bodies, iris_rows, write_bodies

SIZE = 10_000
VARIANTS = 4  # different bodies per case, each starting at another Iris row
CASES = {
    "binary": "V2 binary FP64 [10000, 4] tensor, predictions in binary",
    "arrays": "/predict, 10,000 JSON arrays",
}


def tensor_bodies(rows: list[list[float]], size: int, folder: Path) -> tuple[int, list[Path]]:
    """The header's length and VARIANTS binary infer bodies of `size` rows, written to files."""
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "shape": [size, len(rows[0])],
                    "datatype": "FP64",
                    "parameters": {"binary_data_size": size * len(rows[0]) * 8},
                }
            ],
            "outputs": [{"name": "predict", "parameters": {"binary_data": True}}],
        }
    ).encode()
    paths = []
    for v in range(VARIANTS):
        chosen = [rows[(v * 37 + i) % len(rows)] for i in range(size)]
        path = folder / f"tensor-{size}-{v}.bin"
        path.write_bytes(header + np.array(chosen, dtype="<f8").tobytes())
        paths.append(path)
    return len(header), paths


def check_tensor(server: Server, path: str, header_length: int, body: bytes, size: int) -> None:
    """The server answers the body with `size` predictions, in binary: else the load is wrong."""
    headers = {"Inference-Header-Content-Length": str(header_length)}
    status, got, answer = server.request("POST", path, body, headers, timeout=30)
    length = int(got.get("Inference-Header-Content-Length", "0") or 0)
    if status != 200 or not length:
        raise RuntimeError(f"binary tensor: {status} {answer[:200]!r}")
    outputs = json.loads(answer[:length])["outputs"]
    if outputs[0]["shape"] != [size] or len(answer) - length != size * 8:
        raise RuntimeError(f"binary tensor: answered {outputs}")


Load = Callable[[float], Any]


def loads_for(server: Server, folder: Path) -> dict[str, Load]:
    """The two loads, each a function of seconds, for a server checked to answer them."""
    rows = iris_rows()
    name = json.loads(server.request("GET", "/metadata")[2])["name"]
    infer = f"/v2/models/{name}/infer"
    header_length, tensor_paths = tensor_bodies(rows, SIZE, folder)
    check_tensor(server, infer, header_length, tensor_paths[0].read_bytes(), SIZE)
    arrays = batch_bodies(rows, SIZE, "arrays", VARIANTS)
    arrays_path = write_bodies(folder, f"arrays-{SIZE}", arrays)
    status, _, answer = server.request("POST", "/predict", arrays[0].encode(), JSON, timeout=30)
    if status != 200 or len(json.loads(answer)["predictions"]) != SIZE:
        raise RuntimeError(f"arrays: {status} {answer[:200]!r}")
    return {
        "binary": lambda s: run_tensors(server, infer, header_length, tensor_paths, s),
        "arrays": lambda s: run_wrk(server, arrays_path, 1, s),
    }


def one_client(
    server: Server, reps: int, seconds: float, warmup: float, folder: Path
) -> list[dict[str, Any]]:
    """Rows/s at one connection: the binary tensor, and the same rows as /predict arrays."""
    return interleaved([server], reps, seconds, warmup, folder)[0]


def interleaved(
    servers: list[Server], reps: int, seconds: float, warmup: float, folder: Path
) -> list[list[dict[str, Any]]]:
    """one_client's cases for each server, every run of each case beside the others'."""
    loads = [loads_for(server, folder) for server in servers]
    for load in (load for each in loads for load in each.values()):
        load(warmup)
    cases = [
        [{"kind": k, "case": CASES[k], "size": SIZE, "runs": []} for k in CASES] for _ in loads
    ]
    for _rep, kind in itertools.product(range(reps), CASES):
        for server, load, own in zip(servers, loads, cases, strict=True):
            run = load[kind](seconds)
            rate = run.rps * SIZE
            print(
                f"  {server.name:20} {CASES[kind]:56} {rate:12,.0f} rows/s  "
                f"p50 {run.p50_ms:6.2f} ms",
                flush=True,
            )
            next(c for c in own if c["kind"] == kind)["runs"].append(
                {**vars(run), "rps": run.rps, "rows_per_s": rate}
            )
    return cases


def main(argv: list[str] | None = None) -> None:
    """Measure on gunicorn as `make run` starts it (beside another checkout's) and print the
    medians."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer, shorter runs")
    parser.add_argument(
        "--against",
        type=Path,
        help="also serve the checkout in this folder (another commit's tree, from `git "
        "archive` or `git worktree add`), its runs interleaved with this one's",
    )
    args = parser.parse_args(argv)
    reps, seconds = (2, 2.0) if args.quick else (5, 4.0)
    ensure_wrk()
    servers = [gunicorn(workers=None, name="this checkout")]
    if args.against:
        servers.append(gunicorn(workers=None, name=str(args.against)))
        servers[-1].cwd = args.against.resolve()
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp, ExitStack() as stack:
        for server in servers:
            stack.callback(server.stop)
            server.start()
        results = interleaved(servers, reps, seconds, 1.0, Path(tmp))
    medians = []
    for server, cases in zip(servers, results, strict=True):
        for case in cases:
            rates = [run["rows_per_s"] for run in case["runs"]]
            medians.append(statistics.median(rates))
            print(f"{server.name}: {case['case']}: {spread(rates)} rows/s, median (min-max)")
    if args.against:
        for kind, ours, theirs in zip(CASES, medians, medians[len(CASES) :], strict=False):
            print(f"{CASES[kind]}: this checkout {ours / theirs:.2f}x {args.against}'s")


if __name__ == "__main__":
    main()
