#!/usr/bin/env bash
# The test command: installs what the tests need, starts a dedicated Kafka
# broker, runs the whole suite against it, stops the broker, and exits with
# the suite's status. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

PORT=${CLUEBUS_TEST_PORT:-19092}
RUN_DIR=.run/test
down() {
  .venv/bin/cluebus kafka down --port "$PORT" --run-dir "$RUN_DIR" || true
  rm -rf "$RUN_DIR"
}
trap down EXIT
.venv/bin/cluebus kafka up --port "$PORT" --run-dir "$RUN_DIR"
export CLUEBUS_TEST_KAFKA="127.0.0.1:$PORT"
set +e
.venv/bin/python -m pytest "$@"
status=$?
set -e
exit $status
