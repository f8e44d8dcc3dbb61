# The two set-up commands of the README: `make run` (a node with the sample catalog) and `make test`.
DATA ?= .exnode
PYTEST_ARGS ?=

.PHONY: run test venv services proto lint bench clean

venv:
	@bash ops/bootstrap.sh

run: venv
	.venv/bin/exnode init --data $(DATA) --sample --dev
	.venv/bin/exnode serve --data $(DATA)

services:
	@bash ops/ensure-services.sh

test: venv services
	.venv/bin/python -m pytest $(PYTEST_ARGS)

proto: venv
	bash ops/gen-proto.sh

lint: venv
	.venv/bin/ruff check .

bench: venv services
	.venv/bin/exnode bench catalog

clean:
	rm -rf $(DATA) .pytest_cache
