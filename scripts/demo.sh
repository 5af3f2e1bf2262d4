#!/usr/bin/env bash
# `make demo`: installs what is missing, starts a local Kafka, creates the bus's
# topics, and runs the demo scenario. The broker keeps running afterwards;
# stop it with `.venv/bin/cluebus kafka down`.
set -euo pipefail
cd "$(dirname "$0")/.."
CLUEBUS_SKIP_PROMETHEUS=1 CLUEBUS_SKIP_BROWSER=1 scripts/setup.sh
PORT=${CLUEBUS_DEMO_PORT:-9092}
.venv/bin/cluebus kafka up --port "$PORT"
export CLUEBUS_KAFKA_BOOTSTRAP="127.0.0.1:$PORT"
.venv/bin/cluebus topics ensure
.venv/bin/cluebus demo "$@"
