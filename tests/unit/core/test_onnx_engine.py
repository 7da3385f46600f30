"""The compiled engine: in a process that forks, as gunicorn's master and the function's do;
its numpy labels against numpy's own argmax."""

from __future__ import annotations

import subprocess
import sys
import threading
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from testkit.processes import ROOT, server_env
from webapp.core.onnx_engine import OnnxEngine, first_greatest
from webapp.core.vocabulary import Feature

pytestmark = pytest.mark.unit

# Loads the shipped model's compiled form, forks, predicts in the child and lets it exit as
# a gunicorn worker does (sys.exit, so every exit handler runs); the parent reports how.
FORK = """
import os, sys, time
from pathlib import Path
import numpy as np
from webapp.core.model import load_model
model = load_model(Path("model.pkl"), engine="onnx")
print(len(os.listdir("/proc/self/task")), flush=True)
pid = os.fork()
if pid == 0:
    assert model.predict(np.array([[5.1, 3.5, 1.4, 0.2]])) == [0]
    sys.exit(7)
deadline = time.monotonic() + 20
while time.monotonic() < deadline:
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        print(os.waitstatus_to_exitcode(status))
        break
    time.sleep(0.05)
else:
    os.kill(pid, 9)
    print("hung")
"""


def test_a_forked_worker_exits_cleanly() -> None:
    """No thread in the parent (onnxruntime's telemetry would be one, even if asked for), so
    the child's exit handlers neither hang nor abort: it exits with its own status."""
    # one BLAS thread, as the servers set (runtime/tuning.py); telemetry asked for, and refused
    env = server_env(
        {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "ORT_DISABLE_TELEMETRY": "0"}
    )
    done = subprocess.run(
        [sys.executable, "-c", FORK], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    threads, child = done.stdout.split()
    assert (threads, child) == ("1", "7"), done.stdout + done.stderr
    assert "terminate called" not in done.stderr


# Few distinct values, so that ties are common; NaN and infinities among them.
SCORES = st.sampled_from([0.0, -0.0, 1.0, -1.0, 2.5, 1e308, -1e308, np.inf, -np.inf, np.nan])


@settings(max_examples=300, deadline=None)
@given(
    classes=st.integers(2, 6),
    width=st.sampled_from([1, 3, 1023, 1024, 1500]),
    seed=st.integers(0, 2**32 - 1),
    nan=st.booleans(),
    values=st.lists(SCORES, min_size=1, max_size=8),
)
def test_first_greatest_is_argmax(
    classes: int, width: int, seed: int, nan: bool, values: list[float]
) -> None:
    """Each column's first greatest score, or its first NaN, as argmax(axis=0), whether the
    batch is narrow (argmax itself) or wide (one comparison per class)."""
    pool = np.array(values if nan else [v for v in values if v == v] or [0.0])
    scores = np.random.default_rng(seed).choice(pool, size=(classes, width))
    assert np.array_equal(first_greatest(scores), scores.argmax(axis=0))


def tree_engines(features: list[Feature] | None = None) -> list[OnnxEngine]:
    """Exact-tree graphs of a forest classifier (labels, probabilities) and regressor, fed
    float32 as the service feeds them; `features` unbounded unless given."""
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

    from webapp.package import trees

    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    features = features or [Feature(f"f{i}") for i in range(4)]
    entry = {"inputs": "matrix", "dtype": "float32", "tolerance": 1e-9}
    classes = (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 1)
    forest = RandomForestClassifier(n_estimators=20, random_state=0).fit(X, classes)
    regressor = RandomForestRegressor(n_estimators=20, random_state=0).fit(X, X @ [1, 2, 3, 4])
    return [
        OnnxEngine(
            trees.to_onnx(forest, 4, "float32").SerializeToString(),
            entry,
            features,
            [0, 1, 2],
            probabilities=True,
        ),
        OnnxEngine(
            trees.to_onnx(regressor, 4, "float32").SerializeToString(),
            entry,
            features,
            None,
            probabilities=False,
        ),
    ]


def test_a_single_row_through_bound_tensors_answers_as_a_batch() -> None:
    """One row goes through tensors bound once (OneRow), a batch through the plain call: the
    same labels, values and probabilities, bit for bit, row by row, as arrays and as columns."""
    rows = np.random.default_rng(1).normal(size=(300, 4)) * 2
    rows[::7, 1] = np.nan
    for engine in tree_engines():
        assert engine.one_row is not None  # the test is about it
        batch = engine.predict(rows)
        assert [engine.predict(rows[i : i + 1])[0] for i in range(len(rows))] == batch
        assert [engine.predict([[v] for v in row])[0] for row in rows.tolist()] == batch
        if engine.proba_output:
            proba = engine.predict_proba(rows)
            single = np.concatenate([engine.predict_proba(rows[i : i + 1]) for i in range(300)])
            assert single.tobytes() == proba.tobytes()


def test_a_single_row_while_the_bound_call_is_busy_takes_the_plain_call() -> None:
    """The function's threads: one that finds the bound tensors in use is answered by the
    plain call, not by tensors another thread is writing."""
    engine = tree_engines()[0]
    assert engine.one_row is not None
    rows = np.random.default_rng(2).normal(size=(64, 4))
    want = engine.predict(rows)
    with engine.one_row.lock:  # held, as by another thread
        assert [engine.predict(rows[i : i + 1])[0] for i in range(64)] == want
    results: list[list[Any]] = []

    def answer() -> None:
        results.append([engine.predict(rows[i : i + 1])[0] for i in range(64)])

    threads = [threading.Thread(target=answer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [want] * 8


def test_numbers_beyond_float32_reach_a_float32_graph_as_infinities_without_a_warning() -> None:
    """A feature without a range takes any float64; a float32 graph gets one beyond float32's
    range as an infinity (as XGBoost reads it), one row or a batch, and numpy's overflow
    warning, which pytest makes an error here, is not raised."""
    beyond = np.array([[1e300, -1e39, 3.5e38, 2.0], [-1e300, 1.0, -3.5e38, 1e200]])
    infinite = np.where(np.abs(beyond) > np.finfo(np.float32).max, np.sign(beyond) * np.inf, beyond)
    for engine in tree_engines():
        assert engine.overflows
        want = engine.predict(infinite)
        assert engine.predict(beyond) == want
        assert [engine.predict(beyond[i : i + 1])[0] for i in range(2)] == want
        assert [engine.predict([[v] for v in row])[0] for row in beyond.tolist()] == want


def test_a_float32_graph_whose_ranges_fit_float32_casts_without_a_guard() -> None:
    """Ranges within float32's (packaging's for scikit-learn's trees): nothing can overflow,
    so no single row pays for numpy's error state."""
    within = [Feature(f"f{i}", min=-1e30, max=1e30) for i in range(4)]
    assert not any(engine.overflows for engine in tree_engines(within))
    one_open = [*within[:3], Feature("f3", min=0.0)]
    assert all(engine.overflows for engine in tree_engines(one_open))
