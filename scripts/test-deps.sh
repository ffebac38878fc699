#!/usr/bin/env bash
# Installs what the tests need, cached under ~/.cache/openagents. Each step says loudly when it
# cannot install something; the tests that need it then skip with the same reason.
set -uo pipefail
cd "$(dirname "$0")/.."
for step in scripts/deps.d/*.sh; do
  [ -e "$step" ] || continue
  echo "== test-deps: $step"
  bash "$step" || echo "!! test-deps: $step FAILED; tests that need it will say so" >&2
done
