# Two commands on a fresh machine with Python 3.11 (beside any other) and make:
#   make run    set up and serve the model with gunicorn on $HOST:$PORT (127.0.0.1:8080)
#   make test   set up and run the whole test suite (lint and type checks included)
# and, for the inner loop, `make quick`: the unit tests only, in process (seconds, not minutes).
# The other targets call the project's command, `python -m webapp` here (`sklearn-serve` when
# installed with pip): `python -m webapp --help` lists its subcommands.

# The Python the repository's pins are for, the image's: 3.11, whatever `python3` is here.
# python3.11 where it runs, else pyenv's newest 3.11; or name one, PYTHON=/path/to/python3.11.
PYTHON_311 = import sys; sys.version_info[:2] == (3, 11) and print(sys.executable)
PYTHON ?= $(firstword $(foreach candidate,python3.11 \
	$(sort $(wildcard $(HOME)/.pyenv/versions/3.11.*/bin/python3.11)),\
	$(shell $(candidate) -c '$(PYTHON_311)' 2>/dev/null)))
VENV := .venv
BIN := $(VENV)/bin
# Only this machine may connect unless HOST says otherwise (HOST=0.0.0.0: every interface).
HOST ?= 127.0.0.1
PORT ?= 8080
FUNCTION_PORT ?= 8081

.PHONY: run dev function function-bundle deploy-function deploy-run deploy-vertex package train \
        test quick lint clean container-test bytecode

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null || { echo \
	    "make: no Python 3.11 (requirements.txt pins for it): install it, or PYTHON=/path/to/python3.11" \
	    >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Stamps: reinstall only when a requirements file changes.
$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

# Packaging a model: the runtime, scikit-learn's converter to ONNX and onnx; no test tools.
$(VENV)/.package: requirements.txt requirements-package.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-package.txt
	touch $@ $(VENV)/.runtime

$(VENV)/.dev: requirements.txt requirements-package.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@ $(VENV)/.runtime $(VENV)/.package

# Our own modules' bytecode, written ahead as the image does: where PYTHONDONTWRITEBYTECODE is
# set, every start would compile them again, a part of the cold start (and the tests start
# dozens of servers). Up-to-date files are skipped, so this costs one short python start.
bytecode: $(VENV)/.runtime
	$(BIN)/python -m compileall -q webapp gcf wsgi.py gunicorn.conf.py

run: $(VENV)/.runtime bytecode  ## serve with gunicorn, as in the container
	HOST=$(HOST) PORT=$(PORT) $(BIN)/python serve.py

# wsgi.py, not the bare factory: it configures the JSON logs, as gunicorn and the function do.
dev: $(VENV)/.runtime bytecode  ## Flask's reloading dev server, with its debugger
	OMP_NUM_THREADS=1 $(BIN)/flask --app wsgi run --debug --host $(HOST) --port $(PORT)

# functions-framework --target predict --source webapp/gcf/main.py, serving MODEL.
function: $(VENV)/.runtime bytecode  ## the Cloud Function under functions-framework
	$(BIN)/python -m webapp function $(MODEL) --host $(HOST) --port $(FUNCTION_PORT)

# Deploys (webapp/deploy/gcloud.py): project and region come from the environment, nothing is
# hard-coded, and each deployment is told its project. The default is IAM-authenticated
# (callers need roles/run.invoker and an identity token); ALLOW_UNAUTHENTICATED=1 makes a
# public endpoint. DRY_RUN=1 prints the gcloud commands instead of running them.
GOOGLE_CLOUD_PROJECT ?=
GOOGLE_CLOUD_REGION ?= europe-west1
FUNCTION_NAME ?= iris-predict
SERVICE_NAME ?= iris-predict
# The model the function bundle, Vertex AI and `make package` take: yours with MODEL=path/to/model.pkl.
MODEL ?= model.pkl
DEPLOY_FLAGS = --project "$(GOOGLE_CLOUD_PROJECT)" --region "$(GOOGLE_CLOUD_REGION)" \
	$(if $(filter 1 true yes,$(ALLOW_UNAUTHENTICATED)),--allow-unauthenticated) \
	$(if $(filter 1 true yes,$(DRY_RUN)),--dry-run)

function-bundle: $(VENV)/.runtime  ## build/function: exactly what deploy-function uploads
	$(BIN)/python -m webapp bundle $(MODEL) --out build/function

deploy-function: $(VENV)/.runtime
	$(BIN)/python -m webapp deploy function $(MODEL) --out build/function \
		--name $(FUNCTION_NAME) $(DEPLOY_FLAGS)

deploy-run: $(VENV)/.runtime
	$(BIN)/python -m webapp deploy run --source . --name $(SERVICE_NAME) $(DEPLOY_FLAGS)

# Vertex AI (docs/vertex.md): MODEL's files to a folder of VERTEX_BUCKET named by their pin,
# the image built by Cloud Build into Artifact Registry, the model uploaded with both and
# deployed to the endpoint named VERTEX_MODEL, created on the first deploy.
VERTEX_BUCKET ?=
VERTEX_MODEL ?= $(SERVICE_NAME)
VERTEX_IMAGE ?= $(GOOGLE_CLOUD_REGION)-docker.pkg.dev/$(GOOGLE_CLOUD_PROJECT)/sklearn-serve/sklearn-serve
VERTEX_MACHINE_TYPE ?= n1-standard-2

deploy-vertex: $(VENV)/.runtime
	$(BIN)/python -m webapp deploy vertex $(MODEL) --bucket "$(VERTEX_BUCKET)" \
		--name $(VERTEX_MODEL) --image $(VERTEX_IMAGE) --machine-type $(VERTEX_MACHINE_TYPE) \
		--source . $(DEPLOY_FLAGS)

# Describe your own fitted model for serving: MODEL=path/to/model.pkl [DATA=table.csv]
# [MODEL_NAME=churn] [MODEL_VERSION=1.0.0] [TARGET_COLUMN=column] [FORCE=1]; prints the pin.
package: $(VENV)/.package  ## write MODEL's manifest and compiled form beside it
	$(BIN)/python -m webapp package $(MODEL) $(if $(DATA),--data $(DATA)) \
		$(if $(MODEL_NAME),--name $(MODEL_NAME)) $(if $(MODEL_VERSION),--version $(MODEL_VERSION)) \
		$(if $(TARGET_COLUMN),--target $(TARGET_COLUMN)) $(if $(filter 1 true yes,$(FORCE)),--force)

train: $(VENV)/.dev  ## retrain model.pkl, model.json and model.onnx
	$(BIN)/python train.py

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: $(VENV)/.dev bytecode  ## the whole suite; lint and type checks run inside it
	$(BIN)/python -m pytest

# The tiers are pytest markers (pyproject.toml): unit, integration, browser, and slow on top.
quick: $(VENV)/.dev bytecode  ## the unit tests: no server, no subprocess
	$(BIN)/python -m pytest -q -m unit

# As root: installs podman when missing, builds the image and proves it (container/test.sh).
container-test: $(VENV)/.dev  ## the Cloud Run image, built, run read-only and SIGTERMed
	bash container/test.sh

# Benchmarks on 127.0.0.1, about 30 minutes (BENCH_ARGS=--quick: 7; --image NAME adds 3):
# writes docs/performance.md and its plots. Installs wrk with apt-get when it is missing.
.PHONY: bench
bench: $(VENV)/.dev bytecode
	$(BIN)/python -m bench.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
