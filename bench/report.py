"""Turn the benchmark results into docs/performance.md, its PNG plots and performance.json.

Every figure is the median of its runs with their min-max; every ratio is of two medians from
the same run. `python -m bench.report docs/performance.json` redraws the report from the JSON.
"""

from __future__ import annotations

import json
import statistics
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.pyplot as plt

matplotlib.use("Agg")  # PNG files only, whether or not a display exists

MIB = 1024  # smaps reports KiB
PAIR_COLOURS = ("tab:blue", "tab:green", "tab:purple")  # a target and its baseline share one
PERCENTILES = {"p50_ms": "tab:blue", "p90_ms": "tab:orange", "p99_ms": "tab:red"}
SINGLE_HEADER = (
    "connections",
    "req/s",
    "baseline req/s",
    "ratio (of each pair)",
    "p50 / p90 / p99 ms",
    "baseline p50 / p90 / p99 ms",
    "p99 / p50",
)
# What each tuning trick was measured to give, with the commit that measured it.
TUNING = (
    (
        "collector off while loading, then `gc.freeze()`",
        "`tuning.prepare()`, `settle()`",
        "loading makes ~200,000 objects and under 1,000 of garbage; cold start ~12 % shorter "
        "(c786be8)",
    ),
    (
        "one request of each shape in gunicorn's master before the fork",
        "`tuning.settle(app)`",
        "~3 MiB less private memory per worker: bytecode specialised and caches filled once, "
        "in shared pages (3d9c440)",
    ),
    (
        "`malloc_trim(0)` after 256 KiB or more of JSON (not after a binary tensor's bytes)",
        "`tuning.release()`",
        "worker USS after 10,000-object batches 15.6 -> ~10 MiB; ~1 ms per call (3d9c440)",
    ),
    (
        "glibc keeps buffers under 4 MiB in its heap, and up to 4 MiB of it free, between requests",
        "`tuning.prepare()`",
        "a 10,000-row binary tensor, 1 worker, 1 client: ~330 page faults and 2.7 ms of "
        "worker CPU per request -> none and 1.5 ms, rows/s 1.7x; JSON arrays unchanged; "
        "worker USS after binary tensors ~13 -> ~16 MiB (issue 22)",
    ),
    (
        "one BLAS/OpenMP thread per process",
        "`tuning.prepare()`",
        "the workers are the parallelism; oversubscribed pools only contend",
    ),
    (
        "our modules' bytecode compiled ahead",
        "`make bytecode`, the image build",
        "~20 ms of each start where `PYTHONDONTWRITEBYTECODE` is set (2816ad6)",
    ),
    (
        "onnxruntime's session run without `InferenceSession.run`'s input-name check",
        "`webapp/core/onnx_engine.py`",
        "one Iris row, alone in a loop: ~7 µs instead of 10-17 µs; scikit-learn ~310 µs (issue 15)",
    ),
    (
        "one row through an input and outputs bound once (onnxruntime's IOBinding)",
        "`onnx_engine.OneRow`",
        "a single-row request in process (5 x 4,000, least): forest-30 131 -> 126 µs, "
        "random-forest 120 -> 112, xgboost 136 -> 128; forest-30 at 16 connections 1.016x "
        "the same server without it (6 x 3 s interleaved) (issue 22)",
    ),
    (
        "a scaled logistic regression's labels in numpy, from parameters the manifest records",
        "`onnx_engine.LinearLabels`",
        "inside a served request onnxruntime's call took ~21 µs (its code out of cache), this "
        "~7.5; the request 105 -> 84-94 µs in process, as before the engine (issue 15)",
    ),
    (
        "those labels computed along the batch: a row per feature, then per class",
        "`LinearLabels.labels`, `first_greatest`",
        "numpy broadcast a row of four values at a time: 10,000 Iris rows' labels 256 -> 84 "
        "µs in a loop, the V2 binary tensor 9.4 M -> 11.3 M rows/s, `python -m bench.tensors "
        "--against` main's tree (85998c0)",
    ),
    (
        "strings given as codes in the bound matrix, looked up inside the graph",
        "`webapp/package/codes.py`, `OnnxEngine.matrix`",
        "a single-row request in process (5 x 4,000, least), µs above the empty endpoint: "
        "xgboost-categories 76.8 -> 62.3, lightgbm-categories 69.3 -> 56.8, categories 72.2 "
        "-> 57.8; a 10,000-row batch with an open string feature 0.6 ms slower in the engine "
        "(issue 22)",
    ),
    (
        "string labels given as their classes' indices (the index the graph picked them by), "
        "and a coded feature's membership tests made on its codes: a single row's labels "
        "from the bound call too, and fewer nodes (categories 24 -> 18, splines 55 -> 51)",
        "`codes.labels_as_indices`, `codes._tests_on_codes`",
        "a single-row request in process, the graph packaged before against the new one, 12 "
        "alternating rounds of 3,000, median of the paired differences: categories 12.4 µs "
        "shorter, splines 11.0, seasons 10.4, kernel-map 8.9, column-transformer 7.7; "
        "xgboost-categories, lightgbm-categories and string-labels -1.9 to 4.3 (noise); a "
        "10,000-row batch in the engine (15 interleaved, median) 7.5 -> 6.1 ms for "
        "column-transformer, 5.6 -> 4.6 ms for categories (issue 22)",
    ),
    (
        "a graph computes only the outputs the engine reads",
        "`compile._outputs_read`",
        "onnxruntime runs every node whichever outputs are asked for: isolation-forest 12 -> 7 "
        "nodes, 47.0 -> 42.8 µs above the empty endpoint in process, 0.71x -> 0.78x served "
        "(issue 22)",
    ),
    (
        "nearest neighbours' distances in one broadcast, not a Scan over the training rows",
        "`webapp/package/distances.py`",
        "the `knn` kind's single row in onnxruntime 592 -> 22 µs in a loop; served, 0.30x -> "
        "0.75x the empty endpoint (3 x 3 s interleaved, 16 connections)",
    ),
    (
        "Flask's URL adapter made from the same values, the host worked out once",
        "`webapp/http/flask_app.py`",
        "a single-row /predict ~9 µs shorter in process (scratch, 8 alternating rounds of "
        "4,000, median 111.6 -> 102.6 µs); property-tested against Flask's own (issue 22)",
    ),
    (
        "the service's responses sent without werkzeug's header fixing where there is none",
        "`responses.FixedResponse`",
        "sending a response 6.7 -> 1.8 µs; with the adapter, a single-row request in process "
        "(alternating processes, 4 rounds, best of 5 x 3,000): iris 105-114 -> 91-95 µs, "
        "column-transformer 158-172 -> 142-153, random-forest 153-162 -> 134-143 (issue 22)",
    ),
    (
        "a path without variables answered from a table of werkzeug's own matches, in the "
        "service's URL adapter and in the function",
        "`route.static_answers`",
        "werkzeug's match 3.4 µs in a loop; a single-row /predict in process 138-158 -> "
        "133-149 µs (3 alternating runs of 7 x 3,000, medians); property-tested against "
        "werkzeug's matcher and Flask's adapter (issue 22)",
    ),
    (
        "the function's answers kept as their bytes, unsized (functions-framework then reads "
        "no unread body), and sent by FixedResponse",
        "`function.unread_body_stays_unread`",
        "with the table: a single-row function request in process 234-282 -> 214-217 µs beside "
        "the plain function's ~200 (3 alternating runs); 0.80x -> 0.87x the plain function at "
        "16 connections, one `bench.run` pair each (issue 22)",
    ),
    (
        "SplineTransformer's recursion a pair of products per basis value, all made at once "
        "each step and summed on the last axis; 'constant' beyond the knots as x held to "
        "their ends",
        "`converters._spline_basis`",
        "the zoo's splines 51 -> 35 nodes, seasons 54 -> 40; onnxruntime's single-row call "
        "26.3 -> 17.5 µs and 26.0 -> 19.4 (9 alternating rounds of 2,000, two runs alike), a "
        "request in process 14.7-15.4 and 9.1-14.8 µs shorter (12 paired rounds of 3,000, "
        "two runs); served, splines 0.73x -> 0.90x, seasons 0.75x -> 0.78x (one scratch "
        "`bench.run` pair each, 5 x 4 s); a 10,000-row batch in onnxruntime 10.4 -> 8.2 ms "
        "and 6.7 -> 5.9 (issue 22)",
    ),
    (
        "a batch of numbers predicted and counted as one array",
        "`Predictor.predict`, `predict_array`",
        "a Counter of 10,000 values took 0.4 ms: 10,000 JSON arrays 4.51 -> 4.02 ms in process, "
        "a 10,000-row V2 binary tensor 584 -> 531 µs (best of 7) (issue 22)",
    ),
    (
        "V2 infer requests of the usual shape taken past marshmallow, which would load them "
        "to themselves",
        "`v2.InferRequests`",
        "in process, best of 5: a single-row V2 JSON request 293 -> 242 µs, a 10,000-row "
        "binary tensor 531 -> 445 µs; property-tested against the schema alone (issue 22)",
    ),
    (
        "an imputer's choice between a coded feature and a string of its table made on the "
        "codes, where only Equals with constant strings read it",
        "`codes._tests_on_codes`",
        "column-transformer 24 -> 22 nodes; its single-row request 5.0-6.4 µs shorter in "
        "process (the graph packaged before against the new, 12 alternating rounds of "
        "3,000, two runs) (issue 22)",
    ),
    (
        "a V2 binary tensor's data a view of the body, not a copy",
        "`httpio.parse_infer`",
        "parse_infer 29 -> 18.6 µs in process (three alternating runs) (issue 22)",
    ),
    (
        "not done: a Content-Length body handed to the app from the bytes the worker holds, "
        "not through gunicorn's readers",
        "`webapp/server/worker.py`",
        "a 320 KB body's read 31.9 -> 0.6 µs, but worker USS after 10,000-object batches "
        "11 -> 12-13 MiB (interleaved with and without, two rounds each); reverted. Tried "
        "again as an io.BytesIO over the body (parse, environ and read 88 -> 62 µs in "
        "process): `make bench` then gave 13.7 MiB against 11.5; reverted again (issue 22)",
    ),
    (
        "a matrix whose features share one range (or none), none an integer, checked by its "
        "least and greatest value overall",
        "`accept.ValidRows._within`",
        "no transposed copy: a 10,000-row binary tensor's `of_tensor` 53-64 -> 21-24 µs in "
        "process (best of 9 x 1,000, three alternating rounds) (issue 22)",
    ),
    (
        "a wide batch's first greatest class set with `np.copyto(where=)`",
        "`onnx_engine.first_greatest`",
        "10,000 rows of three classes: 29 -> 22 µs, the batch's labels 131 -> 122 µs in "
        "process (three alternating runs) (issue 22)",
    ),
    (
        "onnxruntime's telemetry thread never started",
        "`webapp/core/onnx_engine.py`",
        "not speed: with it, every forked worker hung or aborted on exit (issue 15)",
    ),
    (
        "the process id kept for prometheus_client",
        "`webapp/runtime/metrics.py`",
        "one `getpid()` system call fewer per metric increment, six per prediction (7392416)",
    ),
)
# Facts kept as numbers for the goals; the scenarios also tell them in words.
_NUMBERS_ALSO_TOLD = {"slowest_ms", "p99_ms", "exit_seconds"}
KIND_HEADER = (
    "kind",
    "served by",
    "largest difference to scikit-learn",
    "req/s, kept alive",
    "empty endpoint, same worker",
    "ratio",
    "req/s, closing",
    "empty endpoint, stock sync",
    "ratio",
)
# Each kind's two single-row pairs (`kind_pair`) and the goal each is held to: issue 22's
# measurement, then the stricter one on the project's own worker.
KIND_GOALS = (
    (
        "stock",
        "every compiled model kind, closing, >= 0.8x an empty Flask endpoint on stock sync "
        "workers (issue 22's measurement), 16 connections",
    ),
    (
        "same",
        "every compiled model kind, kept alive, >= 0.8x the empty endpoint on the same worker, "
        "16 connections",
    ),
)
MEMORY_HEADER = ("workers", "state", "master PSS / USS", "worker PSS", "worker USS", "total PSS")

Row = Sequence[Any]


COLD_GOAL = 0.4  # spawn to first answer, against python importing scikit-learn and unpickling


def med(values: Sequence[float]) -> float:
    return statistics.median(values)


def spread(values: Sequence[float], fmt: str = "{:,.0f}") -> str:
    """'median (min–max)' of the values."""
    return f"{fmt.format(med(values))} ({fmt.format(min(values))}–{fmt.format(max(values))})"


def table(header: Row, rows: Sequence[Row]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in rows]
    return "\n".join(lines)


def series(runs: Sequence[dict[str, Any]], key: str) -> list[float]:
    return [run[key] for run in runs]


def goals(results: dict[str, Any]) -> list[Row]:
    """The open goals as (goal, this run, met?), every figure from this run."""
    rows: list[Row] = []
    single, cold = results["single"], results["cold_start"]
    for key, label, floor in (
        ("gunicorn", "/predict on gunicorn, kept alive, vs stock sync workers", 1.0),
        ("function", "the function", 0.8),
        ("forest", "a 100-tree forest on 30 features, gunicorn", 0.8),
        ("forest, function", "a 100-tree forest on 30 features, the function", 0.8),
        ("forest, container", "a 100-tree forest on 30 features, the container", 0.8),
    ):
        if key not in single:  # a report of a run before it was measured
            continue
        ratio = ratio_of(single[key])
        rows.append(
            (f"{label} >= {floor}x its baseline, 16 connections", f"{ratio:.2f}x", ratio >= floor)
        )
    kinds = results.get("kinds") or {}
    compiled = {name: kind for name, kind in kinds.items() if kind["engine"] == "onnx"}
    for baseline, goal in KIND_GOALS:
        measured = {name: kind_pair(kind, baseline) for name, kind in compiled.items()}
        measured = {name: pair for name, pair in measured.items() if pair is not None}
        if not measured:
            continue
        slowest, runs = min(measured.items(), key=lambda item: ratio_of(item[1]))
        ratio = ratio_of(runs)
        told = f"{ratio:.2f}x (slowest: {slowest})"
        meeting = sum(ratio_of(pair) >= 0.8 for pair in measured.values())
        if 0 < meeting < len(measured):
            told += f"; {meeting} of {len(measured)} at 0.8x or more"
        others = [f"{name} {ratio_of(pair):.2f}x" for name, kind in kinds.items()
                  if name not in compiled and (pair := kind_pair(kind, baseline))]  # fmt: skip
        if others:
            told += f"; served by scikit-learn: {', '.join(others)}"
        rows.append((goal, told, ratio >= 0.8))
    for key, label in (("gunicorn", "/predict on gunicorn"), ("function", "the function")):
        runs = single[key]["runs"]["16"]["target"]
        ratio = med(series(runs, "p99_ms")) / med(series(runs, "p50_ms"))
        rows.append((f"{label}: p99 <= 2x p50, 16 connections", f"{ratio:.2f}x", ratio <= 2))
    for shape, floor in (("arrays", 3_000_000), ("objects", 500_000)):
        case = next(c for c in results["batches"] if c["size"] == 10_000 and c["shape"] == shape)
        rate = med(series(case["runs"], "rows_per_s"))
        rows.append(
            (f"10,000 {shape} per request >= {floor:,} rows/s", f"{rate:,.0f}", rate >= floor)
        )
    for case in results.get("tensors", [])[:1]:  # the binary tensor; absent from older runs
        rate = med(series(case["runs"], "rows_per_s"))
        goal = "a 10,000-row V2 binary tensor, one client >= 10,000,000 rows/s"
        rows.append((goal, f"{rate:,.0f}", rate >= 10_000_000))
    own = results["own_model_batches"]
    rate = med(series(own["runs"], "rows_per_s"))
    goal = "10,000 mixed-type objects (your own model) >= 500,000 rows/s"
    rows.append((goal, f"{rate:,.0f}", rate >= 500_000))
    floor_s = med(cold["floor: imports + unpickle"])
    for name in ("gunicorn, 1 worker", "functions-framework"):
        ratio = med(cold[name]) / floor_s
        rows.append(
            (f"cold start, {name} <= {COLD_GOAL}x the floor", f"{ratio:.2f}x", ratio <= COLD_GOAL)
        )
    for state in list(results["memory"][0]["states"])[1:]:
        uss = max(w["uss"] / MIB for m in results["memory"] for w in m["states"][state]["workers"])
        rows.append((f"every worker's USS {state} <= 15 MiB", f"{uss:.1f} MiB at most", uss <= 15))
    for run in results["faults"]["slow_clients"]:
        f = run["facts"]
        met = not run["problems"] and f["slowest_ms"] <= 1000 and f["p99_ms"] <= 100
        rows.append(
            (
                f"{run['scenario']}: every answer within 1 s, p99 <= 100 ms",
                f"slowest {f['slowest_ms']:,.1f} ms, p99 {f['p99_ms']:.1f} ms",
                met,
            )
        )
    drain = results["faults"]["sigterm"]
    seconds = drain["facts"]["exit_seconds"]
    rows.append(
        (
            "SIGTERM with requests in flight: all answered, exit 0 within 10 s",
            f"{seconds:.2f} s",
            not drain["problems"],
        )
    )
    return [(goal, value, "**yes**" if ok else "no") for goal, value, ok in rows]


def tensor_section(results: dict[str, Any]) -> str:
    """10,000 rows from one client, binary tensor and JSON arrays (none in older runs)."""
    if "tensors" not in results:
        return ""
    rows = [
        (
            c["case"],
            spread(series(c["runs"], "rps")),
            spread(series(c["runs"], "rows_per_s")),
            latencies(c["runs"]),
        )
        for c in results["tensors"]
    ]
    plan = results["plan"]
    return f"""
One client, one connection, through the shipped gunicorn (`python -m bench.tensors` measures
this alone): 10,000 Iris rows per request as an FP64 `[10000, 4]` tensor in the V2 binary
tensor extension (`POST /v2/models/<name>/infer`, its bytes after the JSON header, the
predictions asked for in binary too), beside the same rows as `/predict` JSON arrays;
{plan["batch_reps"]} runs × {plan["batch_seconds"]:g} s per case, cases interleaved.

{table(("request", "req/s", "rows/s", "p50 / p90 / p99 ms"), rows)}
"""


def kind_pair(kind: dict[str, Any], baseline: str) -> dict[str, Any] | None:
    """A kind's single-row pair beside the empty endpoint on the same worker ("same"), or
    beside the stock sync workers ("stock"; None in a run from before it was measured)."""
    pair: dict[str, Any] | None = kind if baseline == "same" else kind.get("stock")
    return pair


def ratio_of(pair: dict[str, Any]) -> float:
    """A single-row pair's ratio of its medians at 16 connections."""
    runs = pair["runs"]["16"]
    return med(series(runs["target"], "rps")) / med(series(runs["baseline"], "rps"))


def difference(kind: dict[str, Any]) -> str:
    """How far the serving engine's answers were from scikit-learn's on the verification rows."""
    if kind["engine"] != "onnx":
        return "none: scikit-learn itself"
    compiled = kind["compiled"]
    found = compiled["verification"]
    parts = [f"classes {found['predictions']}"] if "predictions" in found else []
    for key, label in (
        ("largest_relative_difference", "values, relative"),
        ("largest_relative_probability_difference", "probabilities over 1e-14 apart, relative"),
        ("largest_probability_difference", "probabilities, absolute"),
    ):
        if key in found:
            parts.append(f"{label} {found[key]:.1e}")
    tolerance = compiled.get("tolerance")
    within = f"within {tolerance:g}" if tolerance else "within 1e-6 (float32)"
    return f"{', '.join(parts)}; {found['rows']:,} rows, {within}"


def kind_rows(results: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    for name, kind in results.get("kinds", {}).items():
        served = kind["engine"] + (", exact trees" if kind["compiled"].get("trees") else "")
        row = [f"`{name}`: {kind['estimator']}", served, difference(kind)]
        for pair in (kind_pair(kind, "same"), kind_pair(kind, "stock")):
            if pair is None:  # a report of a run before the stock baseline was measured
                row += ["", "", ""]
                continue
            runs = pair["runs"]["16"]
            row += [
                spread(series(runs["target"], "rps")),
                spread(series(runs["baseline"], "rps")),
                f"{ratio_of(pair):.2f}x",
            ]
        rows.append(row)
    return rows


def fault_rows(results: dict[str, Any]) -> list[Row]:
    """Each fault scenario's facts, one row each."""
    faults = results["faults"]
    runs = [*faults["slow_clients"], *faults["function_limit"], faults["sigterm"]]
    return [
        (
            run["scenario"],
            "; ".join(f"{k}: {v}" for k, v in run["facts"].items() if k not in _NUMBERS_ALSO_TOLD),
            ", ".join(run["problems"]) or "none",
        )
        for run in runs
    ]


def forest_elsewhere(results: dict[str, Any]) -> str:
    """Where else the forest was measured (a run before these pairs measured neither)."""
    where = []
    if "forest, function" in results["single"]:
        where.append("by the function, beside the plain function")
    if "forest, container" in results["single"]:
        where.append(
            "by the image (the forest's folder mounted read-only, `MODEL_PATH` and "
            "`MODEL_SHA256` set), beside the image's empty endpoint"
        )
    return "; then its compiled form " + ", and ".join(where) if where else ""


def single_tables(results: dict[str, Any]) -> str:
    """One table per target beside its baseline."""
    parts = []
    for pair in results["single"].values():
        rows = []
        for connections, runs in pair["runs"].items():
            t, b = runs["target"], runs["baseline"]
            ratio = med(series(t, "rps")) / med(series(b, "rps"))
            pairs = [x["rps"] / y["rps"] for x, y in zip(t, b, strict=True)]
            rows.append(
                (
                    connections,
                    spread(series(t, "rps")),
                    spread(series(b, "rps")),
                    f"{ratio:.2f}x ({min(pairs):.2f}–{max(pairs):.2f})",
                    latencies(t),
                    latencies(b),
                    f"{med(series(t, 'p99_ms')) / med(series(t, 'p50_ms')):.2f}",
                )
            )
        close = ", every request with `Connection: close`" if pair.get("close") else ""
        parts.append(f"**{pair['target']}** beside **{pair['baseline']}**{close}\n")
        parts.append(table(SINGLE_HEADER, rows) + "\n")
    return "\n".join(parts)


def latencies(runs: Sequence[dict[str, Any]]) -> str:
    return " / ".join(f"{med(series(runs, k)):.2f}" for k in ("p50_ms", "p90_ms", "p99_ms"))


def plot(path: Path, draw: Callable[[Any], None], size: tuple[float, float] = (7, 4)) -> None:
    fig = plt.figure(figsize=size, dpi=110)
    draw(fig)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def errorbar(ax: Any, xs: Sequence[float], groups: Sequence[Sequence[float]], **kw: Any) -> None:
    """Medians joined by a line, min-max as error bars."""
    mids = [med(g) for g in groups]
    lows = [m - min(g) for m, g in zip(mids, groups, strict=True)]
    highs = [max(g) - m for m, g in zip(mids, groups, strict=True)]
    ax.errorbar(xs, mids, yerr=[lows, highs], capsize=3, marker="o", **kw)


def curves(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The pairs measured at several connection counts (the forest's only at 16: a table)."""
    return [pair for pair in results["single"].values() if len(pair["runs"]) > 1]


def draw_throughput(results: dict[str, Any]) -> Callable[[Any], None]:
    def draw(fig: Any) -> None:
        ax = fig.add_subplot()
        for pair, colour in zip(curves(results), PAIR_COLOURS, strict=False):
            conns = [int(c) for c in pair["runs"]]
            for side, style in (("target", "-"), ("baseline", "--")):
                groups = [series(r[side], "rps") for r in pair["runs"].values()]
                errorbar(ax, conns, groups, linestyle=style, color=colour, label=pair[side])
        ax.set(xscale="log", xlabel="connections", ylabel="requests/s", ylim=(0, None))
        ax.set_xticks(conns, [str(c) for c in conns])
        ax.set_title("Single-row POST /predict: throughput (median, min-max)")
        ax.legend(fontsize=7)

    return draw


def draw_latency(results: dict[str, Any]) -> Callable[[Any], None]:
    def draw(fig: Any) -> None:
        pairs = curves(results)
        for i, pair in enumerate(pairs):
            ax = fig.add_subplot(1, len(pairs), i + 1)
            conns = [int(c) for c in pair["runs"]]
            for side, style in (("target", "-"), ("baseline", "--")):
                for key, colour in PERCENTILES.items():
                    groups = [series(r[side], key) for r in pair["runs"].values()]
                    label = f"{side} {key[:3]}"
                    errorbar(ax, conns, groups, linestyle=style, color=colour, label=label)
            ax.set(xscale="log", yscale="log", xlabel="connections", ylabel="latency, ms")
            ax.set_xticks(conns, [str(c) for c in conns])
            ax.set_title(pair["target"], fontsize=9)
            ax.legend(fontsize=6)

    return draw


def draw_batches(results: dict[str, Any]) -> Callable[[Any], None]:
    def draw(fig: Any) -> None:
        ax = fig.add_subplot()
        for shape, goal in (("objects", 500_000), ("arrays", 3_000_000)):
            cases = [c for c in results["batches"] if c["shape"] == shape]
            sizes = [c["size"] for c in cases]
            errorbar(ax, sizes, [series(c["runs"], "rows_per_s") for c in cases], label=shape)
            ax.axhline(goal, linestyle=":", color="grey")
            ax.annotate(f"goal, {shape}", (sizes[0], goal), fontsize=7, va="bottom")
        ax.set(xscale="log", yscale="log", xlabel="instances per request", ylabel="rows/s")
        ax.set_xticks(sizes, [f"{s:,}" for s in sizes])
        ax.set_title("Batches through the shipped gunicorn (median, min-max)")
        ax.legend()

    return draw


def draw_cold(results: dict[str, Any]) -> Callable[[Any], None]:
    def draw(fig: Any) -> None:
        ax = fig.add_subplot()
        names = list(results["cold_start"])
        groups = [results["cold_start"][n] for n in names]
        mids = [med(g) for g in groups]
        lows = [m - min(g) for m, g in zip(mids, groups, strict=True)]
        highs = [max(g) - m for m, g in zip(mids, groups, strict=True)]
        colours = ["tab:grey" if i < 2 else "tab:blue" for i in range(len(names))]
        ax.barh(names, mids, xerr=[lows, highs], capsize=3, color=colours)
        goal = f"goal: {COLD_GOAL}x the floor"
        ax.axvline(mids[0] * COLD_GOAL, linestyle=":", color="black", label=goal)
        ax.invert_yaxis()
        ax.set(xlabel="seconds from spawn to first prediction (median, min-max)")
        ax.legend(fontsize=7, loc="lower right")

    return draw


def draw_memory(results: dict[str, Any]) -> Callable[[Any], None]:
    def draw(fig: Any) -> None:
        for i, metric in enumerate(("uss", "pss")):
            ax = fig.add_subplot(1, 2, i + 1)
            counts = [m["workers"] for m in results["memory"]]
            states = list(results["memory"][0]["states"])
            for state in states:
                groups = [
                    [w[metric] / MIB for w in m["states"][state]["workers"]]
                    for m in results["memory"]
                ]
                errorbar(ax, counts, groups, label=f"worker, {state}")
            masters = [m["states"][states[-1]]["master"][metric] / MIB for m in results["memory"]]
            ax.plot(counts, masters, marker="s", linestyle="--", label=f"master, {states[-1]}")
            if metric == "uss":
                ax.axhline(15, linestyle=":", color="grey", label="goal: 15 MiB")
            ax.set(xlabel="workers", ylabel=f"{metric.upper()}, MiB", ylim=(0, None))
            ax.set_xticks(counts)
            ax.legend(fontsize=6)

    return draw


def memory_rows(results: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    for m in results["memory"]:
        for state, sample in m["states"].items():
            pss = [w["pss"] / MIB for w in sample["workers"]]
            uss = [w["uss"] / MIB for w in sample["workers"]]
            total = (sample["master"]["pss"] / MIB) + sum(pss)
            rows.append(
                (
                    m["workers"],
                    state,
                    f"{sample['master']['pss'] / MIB:.1f} / {sample['master']['uss'] / MIB:.1f}",
                    spread(pss, "{:.1f}"),
                    spread(uss, "{:.1f}"),
                    f"{total:.1f}",
                )
            )
    return rows


def write(results: dict[str, Any], docs: Path) -> None:
    """Write performance.md, performance.json and the plots into `docs`."""
    docs.mkdir(parents=True, exist_ok=True)
    (docs / "performance.json").write_text(json.dumps(results, indent=1) + "\n")
    plots = {
        "perf-throughput.png": (draw_throughput(results), (8, 4.5)),
        "perf-latency.png": (draw_latency(results), (4.5 * len(curves(results)), 4.5)),
        "perf-batches.png": (draw_batches(results), (7, 4)),
        "perf-cold-start.png": (draw_cold(results), (7, 3)),
        "perf-memory.png": (draw_memory(results), (9, 4)),
    }
    for name, (draw, size) in plots.items():
        plot(docs / name, draw, size)

    m, plan = results["machine"], results["plan"]
    cold = results["cold_start"]
    floor_s = med(cold["floor: imports + unpickle"])
    cold_rows = [
        (name, spread(v, "{:.3f}"), f"{med(v) / floor_s:.2f}x") for name, v in cold.items()
    ]
    batch_rows = [
        (
            f"{c['size']:,}",
            c["shape"],
            spread(series(c["runs"], "rps")),
            spread(series(c["runs"], "rows_per_s")),
            latencies(c["runs"]),
        )
        for c in results["batches"]
    ]
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items())
    image = f"\n- container image {results['image']}" if "image" in results else ""
    digests = {d for pair in results["served"].values() for d in pair}
    served = ", ".join(
        f"{name} `{' → '.join(dict.fromkeys(pair))}`" for name, pair in results["served"].items()
    )
    warning = (
        "**The served code changed during this run** (another job edited it): the sections "
        "measured different versions; see the digests under Machine.\n\n"
        if len(digests) > 1
        else ""
    )
    text = f"""# Performance

Written by `make bench` on {m["date"]} at commit `{m["commit"]}`, in {m["minutes"]} minutes:

    {results["command"]}

Every figure is the **median of its runs (min–max)**; every ratio is of two medians from this
same run, where target and baseline took turns. The machine is shared, so absolute figures
move between runs; the ratios are what the goals use.
`python -m bench.report docs/performance.json` redraws this page from the raw results.

{warning}## Goals

{table(("goal", "this run", "met?"), goals(results))}

## Machine

- {m["usable_cpus"]} usable CPUs ({m["cpus"]} online), {m["cpu_model"]}, Linux {m["kernel"]}
- Python {m["python"]}; {versions}
- {m["wrk"]}
- load average at start {", ".join(f"{x:.2f}" for x in m["load_average_start"])}, at the end
  {", ".join(f"{x:.2f}" for x in m["load_average_end"])} (other jobs share this machine)
- sha256 of the served files (webapp, gcf, wsgi.py, gunicorn.conf.py, model, requirements)
  before and after each section: {served}{image}

## Single-row POST /predict

wrk on 127.0.0.1, one thread, request bodies cycling through the 150 Iris rows,
{plan["reps"]} runs × {plan["seconds"]:g} s per figure, target and baseline alternating. The
ratio is of the medians; in parentheses, the lowest and highest ratio of a run to the baseline
run beside it.
The gunicorn pair runs `python serve.py` (gunicorn with `gunicorn.conf.py`, the service,
`wsgi:app`) and `python serve.py bench.baselines:app` (an empty Flask endpoint: `get_json()`, a
constant reply): the same worker class, workers and preload, only `--bind 127.0.0.1`. The function
pair runs `functions-framework --target predict --source gcf/main.py` and a plain function
(`bench/plain_function.py`) with functions-framework's defaults (one worker, gthread).
The forest pairs serve a 100-tree random forest on 30 features (`forest-30` in
`testkit/zoo.py`, packaged with `python -m webapp.package`) under the gunicorn pair's settings,
bodies cycling through its held-out rows, at 16 connections only: its compiled form, then
`ENGINE=sklearn` (scikit-learn itself), each beside the empty endpoint{forest_elsewhere(results)}.

{single_tables(results)}
![throughput against connections](perf-throughput.png)

![latency percentiles against connections](perf-latency.png)

## Model kinds

Every model of `testkit/zoo.py`, fitted on its synthetic data and packaged with `python -m
webapp.package` as a user would, served by the gunicorn pair's settings as shipped
(`ENGINE=auto`: the compiled form where it was accepted), single rows cycling through its
held-out rows at 16 connections, {plan.get("kind_reps", 1)} runs ×
{plan.get("kind_seconds", 2):g} s each, beside two baselines in turn. First kept alive, beside
the empty endpoint on the same worker and settings: the model's whole cost shows. Then with
`Connection: close` on every request, beside an empty Flask endpoint on gunicorn's stock sync
workers (which close every connection): the measurement issue 22's goal was set with, when the
service, too, closed every connection. The engine is what `/metadata` says; the difference is
the largest its compiled form showed against scikit-learn on the packaging's verification
rows, and the tolerance it was accepted within (`docs/manifest.md`).

{table(KIND_HEADER, kind_rows(results))}

## Batches

`{{"instances": [...]}}` through the shipped gunicorn, {plan["batch_connections"]} connections,
{plan["batch_reps"]} runs × {plan["batch_seconds"]:g} s per case, cases interleaved; four
different bodies per case, each starting at another Iris row.

{table(("instances", "as", "req/s", "rows/s", "p50 / p90 / p99 ms"), batch_rows)}

![rows per second against batch size](perf-batches.png)
{tensor_section(results)}
Your own model: `{results["own_model_batches"]["model"]}` from `testkit/zoo.py` (a pipeline fitted
on a DataFrame: an integer and a number imputed and scaled, two strings one-hot encoded, some
values null), 10,000 objects per request cycling through its held-out rows, the same
connections and runs: {spread(series(results["own_model_batches"]["runs"], "rows_per_s"))} rows/s
({latencies(results["own_model_batches"]["runs"])} ms p50 / p90 / p99).

## Cold start

Spawn to the first successful `POST /predict`, {plan["cold_reps"]} times each, targets taking
turns after one untimed round. The floor is a bare python that imports what the service
imports and unpickles the artifact: `{results["floor"]}`.
`flask run` is `make dev` without the reloader; gunicorn and the container run 1 worker.
Every target serves the shipped model's compiled form (onnxruntime, no scikit-learn) except
the two `scikit-learn engine` rows, which set `ENGINE=sklearn` and unpickle the model.

{table(("target", "seconds", "vs the floor"), cold_rows)}

![cold start per target](perf-cold-start.png)

## Memory

gunicorn with `WEB_CONCURRENCY` 1, 2 and 4: PSS and USS (private clean + dirty) from
`/proc/PID/smaps_rollup`, idle after boot, after {plan["traffic_seconds"]:g} s per worker of single
rows at 16 connections, then after {plan["traffic_seconds"]:g} s per worker of 10,000-object
batches at {plan["batch_connections"]} connections. MiB; the worker columns are the median
(min–max) over the workers. One boot per worker count.

{table(MEMORY_HEADER, memory_rows(results))}

![memory per worker count](perf-memory.png)

## Faults: slow clients and SIGTERM

`bench/faults.py`. 100 connections trickle a valid `POST /predict` one byte every 0.5 s (its
headers, or its body against a 1 MB `Content-Length`) while one well-behaved client sends
`POST /predict` after `POST /predict` for {plan["slow_seconds"]:g} s. gunicorn runs with 3 s read
deadlines (`GUNICORN_HEADER_TIMEOUT`, `GUNICORN_BODY_TIMEOUT`), the container with its defaults
(10 s, 30 s). The function runs on functions-framework's own server, which has no deadlines:
it gets 2, 4, 8, then 16 slow connections, until the well-behaved client goes unserved.
SIGTERM reaches gunicorn's master while two requests' bodies are still arriving.

{table(("scenario", "what happened", "invariants broken"), fault_rows(results))}

## What each tuning trick was measured to give

`webapp/runtime/tuning.py` and the build cite this section; the figures are from the runs named, on
this kind of machine, each an interleaved comparison with the trick and without it.

{table(("trick", "where", "measured"), TUNING)}

## Reading these figures

- wrk keeps each connection busy (a closed loop): under overload latency includes queueing
  in the listen backlog, and nothing is corrected for coordinated omission.
- gunicorn's workers (`webapp/server/worker.py`) close the connection after every response, so each
  request here pays a TCP connect; functions-framework's gthread worker keeps connections
  alive.
- wrk shares the two cores with the servers, as any client on this machine would.
"""
    (docs / "performance.md").write_text(text)


def main() -> None:
    """Redraw the report from a results JSON: `python -m bench.report docs/performance.json`."""
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/performance.json")
    write(json.loads(path.read_text()), path.parent)


if __name__ == "__main__":
    main()
