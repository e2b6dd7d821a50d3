#!/usr/bin/env bash
# Serves the Worker locally with D1, KV and Durable Objects on http://127.0.0.1:8787
# (PORT overrides). Sets up whatever is missing first, creates a local signing key in
# .dev.vars if there is none, and applies D1 migrations to the local database.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh
export PATH="$ROOT/node_modules/.bin:$HOME/.cargo/bin:$PATH"

if ! grep -q '^JWT_SIGNING_KEY=' .dev.vars 2>/dev/null; then
    echo "[dev] generating a local Ed25519 signing key into .dev.vars" >&2
    umask 077
    node -e 'console.log("JWT_SIGNING_KEY=" + require("crypto").randomBytes(32).toString("base64url"))' >> .dev.vars
fi

CI=true wrangler d1 migrations apply DB --local
PORT="${PORT:-8787}"
# The issuer names where tokens come from, so it follows the port.
exec wrangler dev --ip 127.0.0.1 --port "$PORT" \
    --var "JWT_ISSUER:http://127.0.0.1:$PORT" --var "PUBLIC_BASE_URL:http://127.0.0.1:$PORT"
