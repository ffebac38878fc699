#!/usr/bin/env bash
# Installs promtool (Debian's prometheus package) for test/deploy's rule and config checks.
# Idempotent: does nothing when promtool is already on PATH. Loud when it cannot install.
set -euo pipefail
if command -v promtool >/dev/null 2>&1; then
  echo "20-prometheus: $(promtool --version 2>&1 | head -1)"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "!! 20-prometheus: promtool missing and no apt-get here; install Prometheus (promtool) by hand. test/deploy's promtool tests will skip (fail under CI=true)" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
  else
    echo "!! 20-prometheus: promtool missing; need root or passwordless sudo for apt-get install prometheus. test/deploy's promtool tests will skip (fail under CI=true)" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get update -qq || ! $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null; then
  echo "!! 20-prometheus: apt-get install prometheus FAILED; test/deploy's promtool tests will skip (fail under CI=true)" >&2
  exit 1
fi
# The package starts a prometheus daemon where an init system runs; tests only need promtool.
if ! command -v promtool >/dev/null 2>&1; then
  echo "!! 20-prometheus: prometheus installed but promtool is not on PATH" >&2
  exit 1
fi
echo "20-prometheus: $(promtool --version 2>&1 | head -1)"
