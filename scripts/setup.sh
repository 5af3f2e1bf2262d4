#!/usr/bin/env bash
# Installs everything cluebus needs on a fresh machine: a Python virtualenv with
# the project, Java and Maven for the local Kafka broker, Debian's
# prometheus/promtool, and Debian's chromium + chromium-driver for the console's
# browser tests. Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '==> %s\n' "$*"; }
need_apt=()
command -v java >/dev/null 2>&1 || need_apt+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || need_apt+=(maven)
if [ "${CLUEBUS_SKIP_PROMETHEUS:-0}" != 1 ]; then
  command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
fi
# The console's browser tests drive Debian's Chromium through its WebDriver; a CJK
# font so that the Chinese pages render (and their screenshots show text, not boxes).
if [ "${CLUEBUS_SKIP_BROWSER:-0}" != 1 ]; then
  command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
  command -v chromedriver >/dev/null 2>&1 || need_apt+=(chromium-driver)
  [ -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || need_apt+=(fonts-wqy-microhei)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing ${need_apt[*]} from Debian's packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # policy-rc.d 101: install the binaries, do not start system services.
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
    rm -f /usr/sbin/policy-rc.d
  else
    echo "cluebus setup: please install: ${need_apt[*]}" >&2
    exit 1
  fi
fi

PY=${PYTHON:-python3}
"$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || {
  echo "cluebus setup: Python 3.11 or newer is needed (found $("$PY" --version 2>&1))" >&2; exit 1; }
if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  "$PY" -m venv .venv
fi
stamp=.venv/.cluebus-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  say "installing cluebus and its dependencies into .venv"
  .venv/bin/pip install -q --disable-pip-version-check -e ".[dev,bench]"
  touch "$stamp"
fi
say "resolving the Kafka broker's jars (cached after the first time)"
.venv/bin/python -c 'from services.devkafka.broker import resolve_jars; print("    ", resolve_jars())'
