# The README's commands. `make demo` and `make test` each do all the set-up on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: install demo test lint format pytest benchmarks benchmark-quality reliability images compose-smoke clean

# The project with the collector, trainer and API extras and the test tools (`.[dev]`; not
# `.[quality]`, which `make benchmark-quality` adds).
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch is pinned (torch==2.13.0); pip takes the build its index offers: see README "Install".
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

# checkov pins old boto3/packaging: it lives in a venv of its own. Only the tests use it (the
# static checks of the images, tests/system/test_deploy_static.py), so the demo never builds it.
$(VENV)/checkov/bin/checkov:
	$(PYTHON) -m venv $(VENV)/checkov
	$(VENV)/checkov/bin/pip install --quiet 'checkov==3.3.30'

## demo: collect a synthetic stream, train an LSTM on CPU, serve the API on :8000 (a few minutes)
demo: install
	$(BIN)/tweetdomains demo $(DEMO_ARGS)

## test: lint, type-check, then every test, the reliability suite included (needs Redis on
## 127.0.0.1:6379 and Chromium; about 20 minutes on 2 cores)
test: install lint pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

pytest: install $(VENV)/checkov/bin/checkov
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## reliability: fault, load and hostile-input scenarios against the real processes; prints the table
reliability: install
	$(BIN)/python -m pytest reliability -m reliability -p no:cacheprovider $(PYTEST_ARGS)

benchmarks: install
	$(BIN)/python benchmarks/collector.py
	$(BIN)/python benchmarks/training.py
	$(BIN)/python benchmarks/api.py

## benchmark-quality: LSTM/RNN recipes vs TF-IDF, fastText, MiniLM on the benchmark split (~30 min)
benchmark-quality: install
	$(BIN)/python -m pip install --quiet -e '.[quality]'
	$(BIN)/python benchmarks/quality.py

## images: build the collector, trainer and API images (podman or docker), print sizes, check them
images:
	deploy/images.sh

# podman-compose runs the compose files with podman; a venv of its own, like checkov's.
$(VENV)/compose/bin/podman-compose:
	$(PYTHON) -m venv $(VENV)/compose
	$(VENV)/compose/bin/pip install --quiet 'podman-compose==1.6.0'

## compose-smoke: docker-compose.yml for real: images, collect real tweets, train, classify, tear down
compose-smoke:
	if command -v podman >/dev/null && ! docker info >/dev/null 2>&1; then $(MAKE) $(VENV)/compose/bin/podman-compose; fi
	PODMAN_COMPOSE=$(CURDIR)/$(VENV)/compose/bin/podman-compose $(PYTHON) deploy/compose_smoke.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
