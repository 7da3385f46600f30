# Two commands on a fresh machine with Python 3.11 and make:
#   make run    set up and serve the model with gunicorn on $HOST:$PORT (127.0.0.1:8080)
#   make test   set up and run the whole test suite (lint and type checks included)
# and, for the inner loop, `make quick`: the unit tests only, in process (seconds, not minutes).

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# Only this machine may connect unless HOST says otherwise (HOST=0.0.0.0: every interface).
HOST ?= 127.0.0.1
PORT ?= 8080
FUNCTION_PORT ?= 8081

.PHONY: run dev function function-bundle deploy-function deploy-run deploy-vertex package train \
        test quick lint clean container-test bytecode

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Stamps: reinstall only when a requirements file changes.
$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@ $(VENV)/.runtime

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

function: $(VENV)/.runtime bytecode  ## the Cloud Function under functions-framework
	OMP_NUM_THREADS=1 $(BIN)/functions-framework --target predict --source gcf/main.py \
		--host $(HOST) --port $(FUNCTION_PORT)

# Deploys: project and region come from the environment, nothing is hard-coded, and each
# deployment is told its project (GOOGLE_CLOUD_PROJECT: the logs' trace field) rather than
# asking the metadata server for it. The default is IAM-authenticated (callers need
# roles/run.invoker and an identity token); set ALLOW_UNAUTHENTICATED=1 for a public endpoint.
GOOGLE_CLOUD_PROJECT ?=
GOOGLE_CLOUD_REGION ?= europe-west1
FUNCTION_NAME ?= iris-predict
SERVICE_NAME ?= iris-predict
AUTH_FLAG = $(if $(filter 1 true yes,$(ALLOW_UNAUTHENTICATED)),--allow-unauthenticated,--no-allow-unauthenticated)
# The artifact the function bundle serves: yours with MODEL=path/to/model.pkl.
MODEL ?= model.pkl
# The pin is the manifest's sha256: the manifest records every other file's.
MODEL_SHA256 = $(shell sha256sum $(basename $(MODEL)).json | cut -d' ' -f1)

function-bundle: $(VENV)/.runtime  ## build/function: exactly what deploy-function uploads
	$(BIN)/python gcf/bundle.py build/function --model $(MODEL)

deploy-function: function-bundle
	@test -n "$(GOOGLE_CLOUD_PROJECT)" || { echo "set GOOGLE_CLOUD_PROJECT"; exit 2; }
	gcloud functions deploy $(FUNCTION_NAME) --gen2 --runtime python311 \
		--project $(GOOGLE_CLOUD_PROJECT) --region $(GOOGLE_CLOUD_REGION) \
		--source build/function --entry-point predict --trigger-http $(AUTH_FLAG) \
		--memory 512Mi \
		--set-env-vars MODEL_SHA256=$(MODEL_SHA256),GOOGLE_CLOUD_PROJECT=$(GOOGLE_CLOUD_PROJECT)

# --concurrency = workers x threads: Cloud Run queues the rest at its front end and scales
# out, instead of in the listen backlog, where gunicorn resets them on SIGTERM.
deploy-run:
	@test -n "$(GOOGLE_CLOUD_PROJECT)" || { echo "set GOOGLE_CLOUD_PROJECT"; exit 2; }
	gcloud run deploy $(SERVICE_NAME) --source . \
		--project $(GOOGLE_CLOUD_PROJECT) --region $(GOOGLE_CLOUD_REGION) $(AUTH_FLAG) \
		--cpu 2 --memory 1Gi --concurrency 2 \
		--set-env-vars WEB_CONCURRENCY=2,GOOGLE_CLOUD_PROJECT=$(GOOGLE_CLOUD_PROJECT)

# Vertex AI (docs/vertex.md): MODEL's files go to a folder of VERTEX_BUCKET named by their
# sha256, so an upload never changes what a deployed model reads; Cloud Build builds the image
# into Artifact Registry; the model is uploaded with that image and the folder (the container
# gets it as AIP_STORAGE_URI and fetches it at start, pinned by MODEL_SHA256), then deployed
# to the endpoint named VERTEX_MODEL, created on the first deploy.
VERTEX_BUCKET ?=
VERTEX_MODEL ?= $(SERVICE_NAME)
VERTEX_IMAGE ?= $(GOOGLE_CLOUD_REGION)-docker.pkg.dev/$(GOOGLE_CLOUD_PROJECT)/sklearn-serve/sklearn-serve
VERTEX_MACHINE_TYPE ?= n1-standard-2
VERTEX_ARTIFACTS = gs://$(VERTEX_BUCKET)/$(VERTEX_MODEL)/$(MODEL_SHA256)/
GCLOUD_WHERE = --project $(GOOGLE_CLOUD_PROJECT) --region $(GOOGLE_CLOUD_REGION)
VERTEX_FIND = --filter display_name=$(VERTEX_MODEL) --format 'value(name.basename())'

deploy-vertex: $(VENV)/.runtime
	@test -n "$(GOOGLE_CLOUD_PROJECT)" || { echo "set GOOGLE_CLOUD_PROJECT"; exit 2; }
	@test -n "$(VERTEX_BUCKET)" || { echo "set VERTEX_BUCKET (a bucket name, no gs://)"; exit 2; }
	gcloud storage cp $$($(BIN)/python -m webapp.core.storage $(MODEL)) $(VERTEX_ARTIFACTS)
	gcloud builds submit $(GCLOUD_WHERE) --tag $(VERTEX_IMAGE) .
	gcloud ai models upload $(GCLOUD_WHERE) --display-name $(VERTEX_MODEL) \
		--container-image-uri $(VERTEX_IMAGE) --artifact-uri $(VERTEX_ARTIFACTS) \
		--container-ports 8080 --container-health-route /ready --container-predict-route /predict \
		--container-env-vars MODEL_SHA256=$(MODEL_SHA256),GOOGLE_CLOUD_PROJECT=$(GOOGLE_CLOUD_PROJECT)
	model=$$(gcloud ai models list $(GCLOUD_WHERE) $(VERTEX_FIND) --sort-by ~createTime --limit 1) \
	&& endpoint=$$(gcloud ai endpoints list $(GCLOUD_WHERE) $(VERTEX_FIND) --limit 1) \
	&& if [ -z "$$endpoint" ]; then \
		gcloud ai endpoints create $(GCLOUD_WHERE) --display-name $(VERTEX_MODEL) \
		&& endpoint=$$(gcloud ai endpoints list $(GCLOUD_WHERE) $(VERTEX_FIND) --limit 1); \
	fi \
	&& gcloud ai endpoints deploy-model "$$endpoint" $(GCLOUD_WHERE) --model "$$model" \
		--display-name $(VERTEX_MODEL) --machine-type $(VERTEX_MACHINE_TYPE) \
		--min-replica-count 1 --traffic-split 0=100

# Describe your own fitted model for serving: MODEL=path/to/model.pkl [DATA=table.csv].
package: $(VENV)/.dev  ## write MODEL's manifest and compiled form beside it (webapp.package)
	$(BIN)/python -m webapp.package $(MODEL) $(if $(DATA),--data $(DATA))

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

# Benchmarks on 127.0.0.1, about 16 minutes (BENCH_ARGS=--quick: 7; --image NAME adds 3):
# writes docs/performance.md and its plots. Installs wrk with apt-get when it is missing.
.PHONY: bench
bench: $(VENV)/.dev bytecode
	$(BIN)/python -m bench.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
