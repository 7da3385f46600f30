"""The fallback engine: the pickled estimator, answered by scikit-learn itself.

Used for a model with no compiled form that passed verification, or with ENGINE=sklearn. A
pickle is code: loading one runs whatever it says. model.py has checked its bytes against
the manifest (and the manifest against the pin) before this unpickles them, and an artifact
from another scikit-learn version is refused rather than trusted to behave the same.
"""

from __future__ import annotations

import io
import re
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from .vocabulary import ArtifactError, Feature, Rows, features_of, one_line, parse_datetime

NAME = "sklearn"
# How a file joblib.dump wrote starts: a pickle of protocol 2 or later, or one of the
# compressors joblib offers (zlib, gzip, bz2, xz, lzma, lz4).
PICKLE_STARTS = (
    b"\x80",
    b"\x78",
    b"\x1f\x8b",
    b"BZh",
    b"\xfd7zXZ",
    b"\x5d\x00\x00",
    b"\x04\x22\x4d\x18",
)
_IN_MAIN = re.compile(r"Can't get attribute '([^']+)' on <module '__main__'")
# How pickle protocols 2 to 5 write a short string: an opcode, then its length in 1 or 4 bytes.
_STRINGS = {0x8C: 1, ord("X"): 4}
_MEMO = {0x94: 0, ord("q"): 1, ord("r"): 4}  # MEMOIZE, BINPUT, LONG_BINPUT and their index
_VERSION = re.compile(rb"[0-9][0-9A-Za-z.+-]{0,39}")


class SklearnEngine:
    """A fitted estimator, given its rows as it was fitted on them (DataFrame or array)."""

    name = NAME
    tolerance = 1e-9  # regression outputs' last bits follow the CPU's BLAS kernel

    def __init__(self, estimator: Any, manifest: dict[str, Any]) -> None:
        one_thread(estimator)
        self.estimator = estimator
        self.features = features_of(manifest)
        self.form = manifest["input"]
        self.dataframe = self.form == "dataframe"
        self._check(manifest)

    @classmethod
    def load(cls, data: bytes, path: Path, manifest: dict[str, Any]) -> SklearnEngine:
        """Unpickle verified bytes, refusing another scikit-learn version's artifact."""
        dataframe = manifest.get("input") == "dataframe"
        try:
            with _pandas_kept_out(not dataframe):
                import joblib  # noqa: F401  (unpickle's)
                import sklearn
            if dataframe:
                import pandas  # noqa: F401  (estimator_input builds its DataFrames)
        except ImportError as exc:
            from ..extras import install_command

            raise ArtifactError(
                f"{exc.name} is not installed, and scikit-learn must serve {path} here: "
                f"{install_command('sklearn')}"
            ) from None
        trained_with = manifest["versions"]["scikit-learn"]
        if trained_with != sklearn.__version__:
            raise ArtifactError(
                f"{path} was trained with scikit-learn {trained_with}, this environment has "
                f"{sklearn.__version__}: {where_to_serve(manifest)}"
            )
        try:
            estimator = unpickle(data, path, where_to_serve(manifest))
        except ArtifactError:
            raise
        except Exception as exc:  # a corrupt pickle can raise almost anything
            why = unpickling_failure(exc, data[:8], model_requirements(manifest))
            raise ArtifactError(f"{path} cannot be unpickled: {why}") from None
        return cls(estimator, manifest)

    def _check(self, manifest: dict[str, Any]) -> None:
        """The estimator must take the manifest's features and predict its classes."""
        classification = manifest["task"] == "classification"
        methods = ["predict", "predict_proba"] if manifest.get("probabilities") else ["predict"]
        for method in methods:
            if not callable(getattr(self.estimator, method, None)):
                raise ArtifactError(f"the estimator has no {method}() method")
        n_features = fitted_count(self.estimator) or len(self.features)
        if n_features != len(self.features):
            raise ArtifactError(
                f"the estimator takes {n_features} features, the manifest lists "
                f"{len(self.features)}"
            )
        names = getattr(self.estimator, "feature_names_in_", None)
        if self.dataframe and (names is None or list(names) != [f.name for f in self.features]):
            raise ArtifactError("the estimator was not fitted on the manifest's columns")
        if classification:
            expected = [c["value"] for c in manifest["classes"]]
            classes = np.asarray(getattr(self.estimator, "classes_", [])).tolist()
            if classes != expected or [type(c) for c in classes] != [type(c) for c in expected]:
                raise ArtifactError(
                    f"the estimator's classes {classes} differ from the manifest's {expected}"
                )

    def estimator_input(self, rows: Rows) -> Any:
        """What the estimator takes: a DataFrame with its columns' dtypes, a 2-D array, or a
        1-D one."""
        if isinstance(rows, np.ndarray) and self.form == "array":
            return rows
        return estimator_input(self.features, self.form, rows)

    def predict(self, rows: Rows) -> list[Any]:
        predicted: list[Any] = self.predict_array(rows).tolist()
        return predicted

    def predict_array(self, rows: Rows) -> np.ndarray:
        return one_per_row(self.estimator.predict(self.estimator_input(rows)))

    def predict_proba(self, rows: Rows) -> Any:
        return self.estimator.predict_proba(self.estimator_input(rows))


def fitted_count(estimator: Any) -> int | None:
    """How many features the estimator says it was fitted on (n_features_in_), or None where
    it says none (CatBoost's n_features_in_ is 0)."""
    count = getattr(estimator, "n_features_in_", None)
    return int(count) if isinstance(count, (int, np.integer)) and count > 0 else None


def one_per_row(predicted: Any) -> np.ndarray:
    """An estimator's predictions as one value per row: a table of one column, which a
    regressor fitted on a one-column y gives (LinearRegression on `df[["price"]]`), as that
    column. A wider table stays one (describe refuses a model that predicts one)."""
    array = np.asarray(predicted)
    return array[:, 0] if array.ndim == 2 and array.shape[1] == 1 else array


def one_thread(estimator: Any) -> None:
    """Set every part of a fitted estimator that has threads (n_jobs) to predict in the
    calling one. The worker processes are the parallelism; and a thread pool started in
    gunicorn's master, where the self-check and the warm-up predict before the fork, is not
    in the workers: LightGBM's OpenMP, which takes every core whatever OMP_NUM_THREADS says,
    then waits for it forever in each. One thread also sums a forest's trees in order.

    The fitted parts are found through the estimator's attributes (a pipeline's steps, a
    ColumnTransformer's transformers_, a meta-estimator's estimator_ or estimators_), not its
    parameters, which hold the unfitted templates."""
    seen: set[int] = set()
    pending = [estimator]
    while pending:
        part = pending.pop()
        if id(part) in seen:
            continue
        seen.add(id(part))
        if isinstance(part, (list, tuple)):
            pending.extend(part)
        elif isinstance(part, dict):
            pending.extend(part.values())
        elif callable(getattr(part, "get_params", None)):  # an estimator
            if hasattr(part, "n_jobs"):
                part.n_jobs = 1
            pending.extend(getattr(part, "__dict__", {}).values())


def unpickle(data: bytes, path: Path, advice: str | Callable[[str], str]) -> Any:
    """The object a joblib file holds. A pickle from another scikit-learn version is refused
    with one ArtifactError line naming both versions, then `advice` (what to do; a function
    of the version that pickled it), at its first estimator: scikit-learn warns there, and
    unpickling further gives wrong answers or fails on a module that moved. Whatever else
    unpickling raises is raised as it is."""
    import joblib
    import sklearn
    from sklearn.exceptions import InconsistentVersionWarning

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", InconsistentVersionWarning)
            return joblib.load(io.BytesIO(data))
    except InconsistentVersionWarning as exc:
        pickled_by = exc.original_sklearn_version
    except Exception:
        pickled_by = _pickled_version(data)
        if pickled_by in (None, sklearn.__version__):
            raise
    said = advice if isinstance(advice, str) else advice(str(pickled_by))
    raise ArtifactError(
        f"{path} was pickled by scikit-learn {pickled_by}, this environment has "
        f"{sklearn.__version__}: {said}"
    )


IMAGE_PYTHON = "3.11"  # the Dockerfile's BASE_IMAGE, and the function's runtime


def where_to_serve(manifest: dict[str, Any]) -> str:
    """What to do with a model only scikit-learn can serve, where another version is installed:
    its versions, on the Python it was packaged on where that is not the image's (a numpy
    may need a newer Python: numpy 2.5 installs on 3.12 and later only)."""
    pins = " ".join(model_requirements(manifest))
    packaged_on = ".".join(str(manifest.get("versions", {}).get("python", "")).split(".")[:2])
    if packaged_on in ("", IMAGE_PYTHON):
        return (
            f"serve it where its own versions are installed: pip install {pins}; the image: "
            f'docker build --build-arg MODEL_REQUIREMENTS="{pins}"; the function: '
            "`sklearn-serve bundle` pins them (docs/models.md)"
        )
    return (
        f"serve it where its own versions are installed, on Python {packaged_on} as it was "
        f"packaged (they may not install on another): pip install {pins}; the image: docker "
        f"build --build-arg BASE_IMAGE=python:{packaged_on}-slim --build-arg "
        f'MODEL_REQUIREMENTS="{pins}"; the function runs Python {IMAGE_PYTHON}: package the '
        f"model on Python {IMAGE_PYTHON} to deploy it there (docs/models.md)"
    )


def model_requirements(manifest: dict[str, Any]) -> list[str]:
    """The versions scikit-learn serves this model with, as requirements: those it was packaged
    with, of scikit-learn and of what its pickle holds or its estimator imports (numpy, scipy,
    pandas, and any other library its pickle imports, such as xgboost), as the manifest
    records them (an older one, fewer)."""
    recorded = manifest.get("versions", {})
    names = ["scikit-learn", "numpy", "scipy", "pandas"]
    names += sorted(set(recorded) - {*names, *UNPINNED})
    return [f"{name}=={recorded[name]}" for name in names if isinstance(recorded.get(name), str)]


UNPINNED = ("python", "joblib")  # recorded in "versions", and not a requirement to pin


# How much of a compressed joblib file is decompressed to find the version it names.
VERSION_SEARCH_BYTES = 64 * 1024 * 1024


def _pickled_version(data: bytes) -> str | None:
    """The scikit-learn version a pickle names, read from its bytes without unpickling: each
    estimator's state records it under `_sklearn_version`. A compressed file's is read from
    its first VERSION_SEARCH_BYTES, decompressed. None where there is none to read (no
    estimator, or none that far in, or a compressor this Python lacks)."""
    data = _decompressed_start(data, VERSION_SEARCH_BYTES)
    at = data.find(b"_sklearn_version")
    if at < 0:
        return None
    at += len(b"_sklearn_version")
    if at < len(data) and data[at] in _MEMO:
        at += 1 + _MEMO[data[at]]
    if at >= len(data) or data[at] not in _STRINGS:
        return None
    width = _STRINGS[data[at]]
    length = int.from_bytes(data[at + 1 : at + 1 + width], "little")
    value = data[at + 1 + width : at + 1 + width + length]
    return value.decode() if _VERSION.fullmatch(value) else None


def _decompressed_start(data: bytes, limit: int) -> bytes:
    """At most `limit` bytes of what a file joblib compressed (zlib, gzip, bz2, xz, lzma)
    holds; the bytes themselves where they are not compressed that way (lz4: not read), and
    none where they do not decompress."""
    import zlib

    decompressor: Any
    try:
        if data.startswith(b"\x78"):
            decompressor = zlib.decompressobj()
        elif data.startswith(b"\x1f\x8b"):
            decompressor = zlib.decompressobj(wbits=31)
        elif data.startswith(b"BZh"):
            import bz2

            decompressor = bz2.BZ2Decompressor()
        elif data.startswith((b"\xfd7zXZ", b"\x5d\x00\x00")):
            import lzma

            decompressor = lzma.LZMADecompressor()
        else:
            return data
        return bytes(decompressor.decompress(data, limit))
    except Exception:  # corrupt, or a compressor this Python lacks: nothing to read
        return b""


def unpickling_failure(exc: BaseException, head: bytes, requirements: Sequence[str] = ()) -> str:
    """Why a file did not unpickle, saying what to do where there is something to do: a file
    that is no pickle at all, or a pickle that needs a function or module not importable here
    (a library's among the model's `requirements`, where they are known, or the user's own).

    `head` is the file's first bytes. Pickle stores a function by module and name: one defined
    in the training script is `__main__.name`, which no other program has.
    """
    if not head.startswith(PICKLE_STARTS):
        return "it is not a pickle (save the fitted estimator with joblib.dump(estimator, path))"
    in_main = _IN_MAIN.search(str(exc)) if isinstance(exc, AttributeError) else None
    if in_main:
        return (
            f"it needs {in_main[1]}() from the script that saved it (its __main__), which "
            f"pickle cannot find again: define {in_main[1]} in a module of its own, import it "
            "from there, fit and save again, and keep that module importable where the model "
            "is packaged and served (the current folder, or PYTHONPATH)"
        )
    if isinstance(exc, ModuleNotFoundError):
        own = "run from the folder that holds it, or put that folder on PYTHONPATH"
        if not requirements:
            return f"it needs the module {exc.name!r}, which is not importable here: {own}"
        return (
            f"it needs the module {exc.name!r}, which is not importable here: a library's, "
            f"pip install {' '.join(requirements)} (what it was packaged with); your own, {own}"
        )
    return one_line(exc)


def estimator_input(features: Sequence[Feature], form: str, rows: Rows) -> Any:
    """Rows (a float matrix, or one sequence per feature) as the estimator takes them in the
    manifest's input `form` (vocabulary.INPUTS): a pandas DataFrame with its columns' dtypes
    when it was fitted on one, the one feature's values for a 1-D input, else a 2-D array."""
    columns = list(rows.T) if isinstance(rows, np.ndarray) else rows
    typed: dict[str, Any] = {f.name: _column(f, c) for f, c in zip(features, columns, strict=True)}
    if form == "vector":
        (values,) = typed.values()
        return values
    if form == "dataframe":
        import pandas

        for f in features:
            if f.pandas_categories is not None:  # unseen values and None become NaN
                typed[f.name] = pandas.Categorical(typed[f.name], categories=f.pandas_categories)
            elif f.null_as == "None":  # objects: pandas 3 would make strings of them, None NaN
                typed[f.name] = pandas.Series(typed[f.name], dtype=object, copy=False)
        return pandas.DataFrame(typed, columns=[f.name for f in features])
    kind = np.float64 if all(f.numeric for f in features) else object
    return np.array(list(typed.values()), dtype=kind).T.reshape(-1, len(features))


def _column(feature: Feature, values: Sequence[Any]) -> np.ndarray:
    """One feature's values as the estimator's training data had them: floats with NaN for
    numbers, int64 for integers without nulls, objects with NaN (or None: null_as) for
    categories."""
    missing = None in values  # (a list's own search: no value equals None but None)
    if feature.type == "category":
        # NaN, as pandas reads a missing string: scikit-learn's imputers look for NaN, not None
        if not missing or feature.null_as == "None":
            return np.array(values, dtype=object)
        return np.array([np.nan if v is None else v for v in values], dtype=object)
    if feature.type == "datetime":  # ISO strings, checked by the schemas (parse_datetime)
        moments = [None if v is None else parse_datetime(v) for v in values]
        return np.array(moments, dtype="datetime64[ns]")
    if feature.type == "integer" and not missing:
        return np.array(values, dtype=np.int64)
    return np.array(values, dtype=np.float64)


@contextmanager
def _pandas_kept_out(keep_out: bool) -> Iterator[None]:
    """scikit-learn imports pandas whenever it is installed, though only a model fitted on a
    DataFrame needs it: for any other, pandas stays out while scikit-learn is first imported
    (a part of the cold start and of every worker's memory, docs/performance.md)."""
    blocked = keep_out and "pandas" not in sys.modules and "sklearn" not in sys.modules
    if blocked:
        sys.modules["pandas"] = None  # type: ignore[assignment]  # import pandas: ImportError
    try:
        yield
    finally:
        if blocked and sys.modules.get("pandas", False) is None:
            del sys.modules["pandas"]
