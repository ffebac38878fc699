#!/usr/bin/env bash
# Builds btcd, btcctl, lnd and lncli for the regtest Lightning network that pkg/regtest starts
# (test/lnd). Binaries are cached by version under ~/.cache/openagents/regtest/<version>/bin and
# never copied into the repository. Needs only Go and the module proxy; the lnd build takes about
# 10 minutes and 1.7 GB the first time, so it runs under nice to leave the machine usable.
# Prints the bin directory on success; says loudly why when it cannot build.
set -euo pipefail

BTCD_VERSION=v0.24.2
LND_VERSION=v0.19.3-beta
# lowscrypt is lnd's test-only tag: wallet creation drops from ~8 s to <1 s a node. These
# binaries are for regtest only; never use them for real funds.
LND_TAGS="signrpc walletrpc chainrpc invoicesrpc routerrpc lowscrypt"

VERSION="lnd-${LND_VERSION}_btcd-${BTCD_VERSION}"
BIN="${OPENAGENTS_REGTEST_BIN:-${HOME}/.cache/openagents/regtest/${VERSION}/bin}"

fail() {
  echo "!! 30-regtest: $*" >&2
  echo "!! 30-regtest: test/lnd will skip (and fail under CI=true) until this works" >&2
  exit 1
}

if [ -x "$BIN/btcd" ] && [ -x "$BIN/btcctl" ] && [ -x "$BIN/lnd" ] && [ -x "$BIN/lncli" ]; then
  echo "30-regtest: cached in $BIN"
  exit 0
fi

command -v go >/dev/null 2>&1 || fail "go not found on PATH; install Go 1.26"
mkdir -p "$BIN" || fail "cannot create $BIN"

# Build outside any workspace so the repository's go.work and go.mod play no part.
export GOWORK=off GOFLAGS=-buildvcs=false
NICE="nice -n 19"
work="$(mktemp -d "${TMPDIR:-/tmp}/openagents-regtest-build.XXXXXX")"
trap 'rm -rf "$work"' EXIT

start=$(date +%s)
if [ ! -x "$BIN/btcd" ] || [ ! -x "$BIN/btcctl" ]; then
  echo "30-regtest: building btcd ${BTCD_VERSION} (about 1 minute)"
  (cd "$work" && GOBIN="$BIN" $NICE go install \
    "github.com/btcsuite/btcd@${BTCD_VERSION}" \
    "github.com/btcsuite/btcd/cmd/btcctl@${BTCD_VERSION}") ||
    fail "go install btcd ${BTCD_VERSION} failed (module proxy reachable?)"
fi

if [ ! -x "$BIN/lnd" ] || [ ! -x "$BIN/lncli" ]; then
  echo "30-regtest: building lnd ${LND_VERSION} (about 10 minutes on 2 cores)"
  # go install refuses lnd (its go.mod has replace directives): build in a writable copy.
  dir=$(cd "$work" && go mod download -json "github.com/lightningnetwork/lnd@${LND_VERSION}" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p') || true
  [ -n "$dir" ] && [ -d "$dir" ] || fail "go mod download lnd ${LND_VERSION} failed"
  cp -r "$dir" "$work/lnd"
  chmod -R u+w "$work/lnd"
  ldflags="-X github.com/lightningnetwork/lnd/build.Commit=${LND_VERSION}"
  for cmd in lnd lncli; do
    (cd "$work/lnd" && $NICE go build -tags="$LND_TAGS" -ldflags="$ldflags" \
      -o "$BIN/$cmd.tmp" "./cmd/$cmd") || fail "go build $cmd ${LND_VERSION} failed"
    # Rename last so an interrupted build never leaves a binary that looks complete.
    mv "$BIN/$cmd.tmp" "$BIN/$cmd"
  done
fi

"$BIN/lnd" --version >/dev/null 2>&1 || fail "$BIN/lnd does not run"
"$BIN/btcd" --version >/dev/null 2>&1 || fail "$BIN/btcd does not run"
echo "30-regtest: built in $(($(date +%s) - start)) s into $BIN"
