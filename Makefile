# The two commands of the README: `make run` and `make test`. Everything installs into .venv/.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install run test package lint bench clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP)

## make run: the hub on http://127.0.0.1:$${HUB_PORT:-8000} with an embedded AWS (moto server)
run: install
	$(BIN)/python -m localmode

## make test: the whole suite (unit, functional, end-to-end over HTTP, packaging checks)
test: install
	$(BIN)/python -m pytest -q -n 2

## make package: Chalice deployment zip + CloudFormation template under build/
package: install
	$(BIN)/python -m infra.package

lint: install
	$(BIN)/cfn-lint build/template.json

bench: install
	$(BIN)/python -m bench.run_all

clean:
	rm -rf build vendor .pytest_cache
