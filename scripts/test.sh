#!/usr/bin/env bash
# Runs every test: native unit tests of the domain (cargo test), then the integration suites
# against the built Worker in Miniflare (node --test), among them the deploy check
# (tests/deploy.test.mjs: what a plain `wrangler deploy` would upload must be
# production-safe), so a failing check fails the run. Ends with one combined summary line.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh --browser
bash scripts/build.sh
export PATH="$ROOT/node_modules/.bin:$HOME/.cargo/bin:$PATH"

LOGS="$(mktemp -d)"
trap 'rm -rf "$LOGS"' EXIT

cargo_status=0
cargo test --color never 2>&1 | tee "$LOGS/cargo.txt" || cargo_status=$?

node_status=0
node --test --test-reporter=spec --test-concurrency=2 "tests/*.test.mjs" 2>&1 | tee "$LOGS/node.txt" || node_status=$?

cargo_passed=$(grep -Eo '[0-9]+ passed' "$LOGS/cargo.txt" | awk '{ s += $1 } END { print s + 0 }')
cargo_failed=$(grep -Eo '[0-9]+ failed' "$LOGS/cargo.txt" | awk '{ s += $1 } END { print s + 0 }')
node_passed=$(grep -E '^ℹ pass [0-9]+' "$LOGS/node.txt" | awk '{ s += $3 } END { print s + 0 }')
node_failed=$(grep -E '^ℹ fail [0-9]+' "$LOGS/node.txt" | awk '{ s += $3 } END { print s + 0 }')

if [ "$cargo_status" -ne 0 ] && [ "$cargo_failed" -eq 0 ]; then cargo_failed=1; fi
if [ "$node_status" -ne 0 ] && [ "$node_failed" -eq 0 ]; then node_failed=1; fi

echo "unit tests (cargo): $cargo_passed passed, $cargo_failed failed"
echo "integration tests (miniflare, deploy check): $node_passed passed, $node_failed failed"
echo "total: $((cargo_passed + node_passed)) passed, $((cargo_failed + node_failed)) failed"
[ "$((cargo_failed + node_failed))" -eq 0 ]
