# Two commands on a fresh machine with Python 3.11 and make:
#   make run    set up and serve the model with gunicorn on $PORT (default 8080)
#   make test   set up and run the whole test suite (lint and type checks included)

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8080
FUNCTION_PORT ?= 8081

.PHONY: run dev function train test lint clean

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

run: $(VENV)/.runtime  ## serve with gunicorn, as in the container
	PORT=$(PORT) $(BIN)/gunicorn -c gunicorn.conf.py

dev: $(VENV)/.runtime  ## Flask's reloading dev server
	OMP_NUM_THREADS=1 $(BIN)/flask --app webapp run --debug --port $(PORT)

function: $(VENV)/.runtime  ## the Cloud Function under functions-framework
	OMP_NUM_THREADS=1 $(BIN)/functions-framework --target predict --source gcf/main.py \
		--port $(FUNCTION_PORT)

train: $(VENV)/.runtime  ## retrain model.pkl and model.json
	$(BIN)/python train.py

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: $(VENV)/.dev  ## the whole suite; lint and type checks run inside it
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
