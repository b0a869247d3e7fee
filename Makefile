# The two commands of the README: `make run` and `make test`. Everything installs into .venv/.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install chromium run test package lint bench openapi clean audit-deps

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP)

## make run: the hub on http://127.0.0.1:$${HUB_PORT:-8000} with an embedded AWS (moto server)
run: install
	$(BIN)/python -m localmode

## make chromium: Debian's Chromium for the console's browser test (idempotent; needs root and apt-get,
## else the test says why it skips)
chromium:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || echo "chromium could not be installed: tests/test_console_browser.py will skip" >&2; \
	else echo "no root or apt-get: install chromium to run tests/test_console_browser.py" >&2; fi

## make test: the whole suite (unit, functional, end-to-end over HTTP, packaging checks, the console in Chromium)
test: install chromium
	$(BIN)/python -m pytest -q -n 2

## make package: Chalice deployment zip + CloudFormation template under build/
package: install
	$(BIN)/python -m infra.package

lint: install
	$(BIN)/cfn-lint build/template.json

bench: install
	$(BIN)/python -m bench.run_all

## make openapi: regenerate the checked-in OpenAPI 3.1 document from the models (tests/test_openapi.py compares)
openapi: install
	$(BIN)/python -m chalicelib.openapi > chalicelib/data/openapi.json.tmp
	mv chalicelib/data/openapi.json.tmp chalicelib/data/openapi.json

clean:
	rm -rf build vendor .pytest_cache

## make audit-deps: pip-audit of the pinned requirements against PyPI's vulnerability data (strict:
## a dependency it cannot audit fails too). CI runs it where that service answers (.ci/run).
audit-deps: install
	$(BIN)/pip-audit --strict --progress-spinner off -r requirements.txt -r requirements-dev.txt
