# The two commands a new machine needs: `make demo` and `make test`.
.PHONY: setup demo test unit lint schemas clean bench

setup:            ## install Python deps, Java/Maven and prometheus if missing
	scripts/setup.sh

demo:             ## run the whole bus locally with a short demo
	scripts/demo.sh

test:             ## install, start Kafka, run every test, stop Kafka
	scripts/test.sh

unit:             ## unit tests only (no broker)
	.venv/bin/python -m pytest tests/unit -q

lint:             ## one formatter and one linter for the whole tree (CI runs this)
	scripts/setup.sh >/dev/null
	.venv/bin/ruff format --check .
	.venv/bin/ruff check .

schemas:          ## regenerate JSON Schema and AsyncAPI files
	.venv/bin/cluebus schemas export

clean:
	rm -rf .run .pytest_cache .hypothesis

bench:            ## every benchmark against the local broker (make test's port); bench/results/summary.md
	.venv/bin/python bench/run.py
