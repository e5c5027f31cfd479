# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv and install:
# the demo only what it runs (artnet and matplotlib for its charts), the tests the extras too.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install demo test bench clean

$(VENV)/.installed-demo: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[plots]'
	touch $@

$(VENV)/.installed-dev: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed-demo  # the demo's needs are a part of these

install: $(VENV)/.installed-dev

demo: $(VENV)/.installed-demo
	$(BIN)/artnet demo

test: install
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python benchmarks/model_speed.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache
