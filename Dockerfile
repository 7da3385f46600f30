# The prediction service for Cloud Run: gunicorn serving the committed model.pkl on $PORT.
#   docker build -t sklearn-serve .    (or podman build; `make container-test` builds and tests it)
#
# BASE_IMAGE lets a builder without registry access substitute its own python 3.11 base.
ARG BASE_IMAGE=python:3.11-slim
# The manifest's sha256 (model.json records every other file's), as ENV MODEL_SHA256. A literal,
# because ENV needs a value before any RUN, and every way to build (`gcloud run deploy --source
# .` takes no build arguments) must pin the same bytes. tests/service/test_container.py holds it equal
# to model.json's sha256, and the build boots the app with it, so a stale pin fails the tests
# and the build, never a boot.
ARG MODEL_SHA256=b1f3d13d4425767b067080210d947a77e5289bb77511e16a71f08081ed028d4c

FROM ${BASE_IMAGE} AS build

# Binary wheels only: the build needs no compiler, and an sdist fails the build here instead of
# pulling a toolchain into it. The serving venv keeps its .pyc files (a read-only root cannot
# write them at start) but not what the image never runs: pip, setuptools, the test suites,
# C headers and Cython sources, functions-framework and its web stack (the function's, not
# gunicorn's), onnxruntime's C library (its Python binding links its own copy) and its
# model-building tools, nor pandas unless the model was fitted on a DataFrame (for any other
# it is never imported). Shared libraries lose their symbol tables (not those auditwheel
# patched into the *.libs folders: stripped, they no longer load), and numpy, scipy and
# scikit-learn their sources (their bytecode stays where the sources were, which Python
# imports; a traceback through them shows file and line, not the line's text). Loading every
# shared library and importing every scikit-learn estimator proves nothing broke. What each
# costs is in docs/deploy.md's container table.
RUN python3 -m venv /opt/venv
COPY requirements.txt model.json /tmp/
# A model only scikit-learn can serve keeps the versions it was packaged with: MODEL_REQUIREMENTS
# (say "scikit-learn==1.4.2 numpy==1.26.4 scipy==1.11.4 pandas==2.2.3", as the refusal to serve
# it elsewhere prints them) takes the place of those pins, and pandas stays when it names pandas.
ARG MODEL_REQUIREMENTS=""
# binutils (strip) comes from the base image's own Debian release, whichever it is, and stays in
# this build stage: pinning its version would tie the build to one release.
# hadolint ignore=DL3008
RUN touch /tmp/model-requirements.txt \
    && for pin in $MODEL_REQUIREMENTS; do \
        sed -i "/^${pin%%==*}==/d" /tmp/requirements.txt \
        && echo "$pin" >> /tmp/model-requirements.txt; \
    done \
    && /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check --only-binary=:all: \
        -r /tmp/requirements.txt -r /tmp/model-requirements.txt \
    && if grep -q '"input": "array"' /tmp/model.json \
        && ! grep -q '^pandas==' /tmp/model-requirements.txt; then \
        /opt/venv/bin/pip uninstall --yes --quiet pandas python-dateutil tzdata; fi \
    && /opt/venv/bin/pip uninstall --yes --quiet functions-framework cloudevents deprecation \
        uvicorn uvicorn-worker h11 starlette anyio watchdog \
    && /opt/venv/bin/pip uninstall --yes --quiet pip setuptools \
    && site=/opt/venv/lib/python3.11/site-packages \
    && find "$site/numpy" "$site/scipy" "$site/sklearn" -type d -name tests -prune \
        -exec rm -rf {} + \
    && find "$site" \( -name '*.pyi' -o -name '*.pxd' -o -name '*.pyx' -o -name '*.h' \
        -o -name '*.c' -o -name '*.cpp' -o -name '*.hpp' \) -type f -delete \
    && rm -rf "$site/pandas/tests" "$site"/onnxruntime/capi/libonnxruntime.so* \
        "$site/onnxruntime/transformers" "$site/onnxruntime/quantization" \
        "$site/onnxruntime/tools" \
    && apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends binutils \
    && find "$site" -path '*.libs' -prune -o -name '*.so*' -type f -exec strip --strip-unneeded {} + \
    && for package in numpy scipy sklearn; do \
        /opt/venv/bin/python -m compileall -q -b "$site/$package" \
        && find "$site/$package" -name '*.py' -type f -delete \
        && find "$site/$package" -name __pycache__ -type d -prune -exec rm -rf {} +; \
    done \
    && /opt/venv/bin/python -c "import ctypes, pathlib, sys; \
        [ctypes.CDLL(str(p)) for p in pathlib.Path(sys.prefix).rglob('*.so*') \
            if not p.parent.name.endswith('.libs')]; \
        from sklearn.utils import all_estimators; all_estimators()"

WORKDIR /app
COPY webapp/ webapp/
COPY serve.py wsgi.py gunicorn.conf.py model.pkl model.json model.onnx model.verification.json ./

# Loading the app checks model.json against the pin, the files it serves from against the
# manifest, the engine's versions and the self-check prediction. Our modules' bytecode is
# compiled here, like the venv's: the runtime writes none, and compiling them would cost every
# start (docs/performance.md). checked-hash pycs stay valid whatever mtimes the copy between
# stages gives the sources, and never outlive an edit.
ARG MODEL_SHA256
RUN /opt/venv/bin/python -m compileall -q --invalidation-mode checked-hash \
        webapp wsgi.py gunicorn.conf.py \
    && MODEL_SHA256="${MODEL_SHA256}" /opt/venv/bin/python -B -c "import wsgi"

FROM ${BASE_IMAGE}

ARG MODEL_SHA256
# One BLAS/OpenMP thread per worker process; no .pyc writes on a read-only (or in-memory) root;
# every interface, since the clients (Cloud Run's front end, Vertex AI) are outside the container.
ENV PATH=/opt/venv/bin:$PATH \
    HOST=0.0.0.0 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    OMP_NUM_THREADS=1 \
    OPENBLAS_NUM_THREADS=1 \
    MKL_NUM_THREADS=1 \
    MODEL_SHA256=${MODEL_SHA256}

RUN groupadd --system --gid 10001 app \
    && useradd --system --no-log-init --uid 10001 --gid app --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin app

# From the build stage: exactly the files the check above has just loaded.
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
WORKDIR /app

# Numeric, so a runtime can verify it is not root without reading /etc/passwd.
USER 10001:10001
EXPOSE 8080
# Exec form: gunicorn's master (serve.py runs it in process) is PID 1 and receives SIGTERM
# itself; gunicorn.conf.py reads $PORT.
CMD ["python", "serve.py"]
