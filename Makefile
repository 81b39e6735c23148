# The two set-up commands: `make serve` and `make test`. Each creates or reuses .venv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: serve test test-xla check deploy-check container-test lint docs bench train-reverse train-memory train-dates train-dates-transformer clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The modules a command runs compiled into __pycache__ ahead: where PYTHONDONTWRITEBYTECODE is
# set (this machine sets it) Python never writes them, so every process would compile
# all ~170 of them again (0.3 s of CPU per server or CLI process; the suite starts dozens)
COMPILE := $(BIN)/python -m compileall -q

serve: $(STAMP)
	$(COMPILE) service >/dev/null
	SERVICE_DEFAULT_MODEL=$${SERVICE_DEFAULT_MODEL-reverse} $(BIN)/python -m service serve

test: $(STAMP)
	scripts/ensure-redis-server
	scripts/ensure-chromium
	$(COMPILE) service tests bench >/dev/null
	$(BIN)/python -m pytest

# XLA against the TF graphs on every user model and operation (minutes of compiling:
# not in `make test`; .ci/run runs it)
test-xla: $(STAMP)
	SERVICE_TEST_XLA_MATRIX=1 $(BIN)/python -m pytest -q tests/integration/test_xla.py

# the fast tier for the edit-test loop: lint, then every test that needs no server process
# and no TensorFlow model (tests/unit, tests/contract), but those marked slow; under a minute
check: lint
	scripts/ensure-redis-server
	$(COMPILE) service tests bench >/dev/null
	$(BIN)/python -m pytest -q -m "not slow" tests/unit tests/contract

# the Kubernetes overlays and KServe objects rendered into build/deploy/, validated offline
deploy-check: $(STAMP)
	$(BIN)/python scripts/deploy_check.py

container-test: $(STAMP)
	scripts/container-test

LINTED := service tests bench scripts

lint: $(STAMP)
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/mypy service

# the documentation site (mkdocs.yml, docs/) into site/; --strict: a warning fails
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

# the bench extra (matplotlib, for bench.png) is not in dev: Keras imports matplotlib
# whenever it is installed, 0.15-0.3 s of every test process's TensorFlow import
bench: $(STAMP)
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	$(COMPILE) service tests bench >/dev/null
	$(BIN)/python -m bench

train-reverse: $(STAMP)
	$(BIN)/python -m service train reverse --out model_store/reverse/1 --seed 1

train-memory: $(STAMP)
	$(BIN)/python -m service train memory --out model_store/memory/1 --seed 1

train-dates: $(STAMP)
	$(BIN)/python -m service train dates --out model_store/dates/1 --seed 1

train-dates-transformer: $(STAMP)
	$(BIN)/python -m service train dates-transformer --out model_store/dates-transformer/1 --seed 1

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache site
