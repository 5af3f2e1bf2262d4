#!/usr/bin/env bash
# `make demo`: installs what is missing, starts a local Kafka, creates the bus's
# topics, and runs the demo scenario. The broker keeps running afterwards;
# stop it with `.venv/bin/cluebus kafka down`.
set -euo pipefail
cd "$(dirname "$0")/.."
CLUEBUS_SKIP_PROMETHEUS=1 scripts/setup.sh
PORT=${CLUEBUS_DEMO_PORT:-9092}
.venv/bin/cluebus kafka up --port "$PORT"
export CLUEBUS_KAFKA_BOOTSTRAP="127.0.0.1:$PORT"
.venv/bin/cluebus topics ensure
if .venv/bin/cluebus demo --help >/dev/null 2>&1; then
  .venv/bin/cluebus demo
else
  echo "demo: Kafka is up at $CLUEBUS_KAFKA_BOOTSTRAP with every topic of the bus:"
  .venv/bin/cluebus topics list
fi
