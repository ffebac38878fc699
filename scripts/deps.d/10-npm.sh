#!/usr/bin/env bash
# Installs the Node peer used by test/interop (nostr-tools, pinned in package.json and
# package-lock.json). npm's cache lives under ~/.cache/openagents so it survives fresh clones.
set -euo pipefail
cd "$(dirname "$0")/../../test/interop/js"
if ! command -v npm >/dev/null 2>&1; then
  echo "!! 10-npm: npm not found; install Node 20 (apt-get install nodejs npm). test/interop will skip (fail under CI=true)" >&2
  exit 1
fi
export npm_config_cache="${HOME}/.cache/openagents/npm"
mkdir -p "$npm_config_cache"
if [ -f package-lock.json ]; then
  # ci installs exactly the lock file and fails if package.json and the lock disagree.
  npm ci --no-audit --no-fund --loglevel=error
else
  npm install --no-audit --no-fund --loglevel=error
fi
node -e "import('nostr-tools').then(m => { if (!m.verifyEvent) process.exit(1); console.log('10-npm: nostr-tools ready, node ' + process.version) })"
