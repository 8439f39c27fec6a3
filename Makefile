# The two README commands: `make up` and `make test`. Both install what is missing first.
SHELL := /bin/bash
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
PYTEST_ARGS ?=

.PHONY: install up test bench chaos lint infra-start infra-stop infra-status clean-infra

install:  ## uv, the locked Python environment, the local Kafka and FerretDB
	@bash deploy/local/bootstrap.sh

up: install  ## Kafka, FerretDB and the four services, a demo cohort, the docs URLs; Ctrl-C stops
	@$(UV) run --frozen python deploy/local/up.py

test: install  ## the whole suite against a real Kafka broker and FerretDB it starts itself
	@$(UV) run --frozen pytest $(PYTEST_ARGS)

bench: install  ## raw limits, the by-the-book baseline and the services in one run (.bench/)
	@$(UV) run --frozen python bench/run.py

chaos: install  ## fault injection, the small run then the large one: processes killed under load (.chaos/)
	@$(UV) run --frozen pytest -m chaos tests/test_chaos.py
	@$(UV) run --frozen python chaos/run.py

lint:
	@$(UV) run --frozen ruff check .

infra-start: install  ## only Kafka and FerretDB, in the background (make up reuses them)
	@$(UV) run --frozen python deploy/local/infra.py start

infra-stop:
	@$(UV) run --frozen python deploy/local/infra.py stop

infra-status:
	@$(UV) run --frozen python deploy/local/infra.py status

clean-infra:  ## forget the local data of `make up` (installs stay cached)
	rm -rf .infra/run
