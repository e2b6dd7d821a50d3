#!/usr/bin/env bash
# Runs every test: native unit tests of the domain (cargo test), then the integration suites
# against the built Worker in Miniflare (node --test), among them the deploy check
# (tests/deploy.test.mjs: what a plain `wrangler deploy` would upload must be
# production-safe), so a failing check fails the run. The integration suites run twice: on
# D1, then on PostgreSQL (TEST_DATABASE=postgres: a throw-away server from the
# embedded-postgres package, or DATABASE_URL's). Ends with one combined summary line.
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

cargo_passed=$(grep -Eo '[0-9]+ passed' "$LOGS/cargo.txt" | awk '{ s += $1 } END { print s + 0 }')
cargo_failed=$(grep -Eo '[0-9]+ failed' "$LOGS/cargo.txt" | awk '{ s += $1 } END { print s + 0 }')
if [ "$cargo_status" -ne 0 ] && [ "$cargo_failed" -eq 0 ]; then cargo_failed=1; fi
echo "unit tests (cargo): $cargo_passed passed, $cargo_failed failed"
total_passed=$cargo_passed
total_failed=$cargo_failed

for database in d1 postgres; do
    status=0
    echo "[test] integration suites on $database"
    TEST_DATABASE="$database" node --test --test-reporter=spec --test-concurrency=2 "tests/*.test.mjs" 2>&1 \
        | tee "$LOGS/node-$database.txt" || status=$?
    passed=$(grep -E '^ℹ pass [0-9]+' "$LOGS/node-$database.txt" | awk '{ s += $3 } END { print s + 0 }')
    failed=$(grep -E '^ℹ fail [0-9]+' "$LOGS/node-$database.txt" | awk '{ s += $3 } END { print s + 0 }')
    if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
    echo "integration tests on $database (miniflare, deploy check): $passed passed, $failed failed"
    total_passed=$((total_passed + passed))
    total_failed=$((total_failed + failed))
done

echo "unit tests (cargo): $cargo_passed passed, $cargo_failed failed"
echo "total: $total_passed passed, $total_failed failed"
[ "$total_failed" -eq 0 ]
