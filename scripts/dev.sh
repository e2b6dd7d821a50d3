#!/usr/bin/env bash
# Serves the Worker locally with D1, KV and Durable Objects on http://127.0.0.1:8787
# (PORT overrides). Sets up whatever is missing first, creates local secrets in .dev.vars if
# there are none, and applies D1 migrations to the local database. With DATABASE=postgres,
# the tables live in PostgreSQL instead: DATABASE_URL's server, or a throw-away local one,
# migrated and reached through the Hyperdrive binding; its connection string is printed.
#
# The development settings live here, not in wrangler.toml: its top level is what a plain
# `wrangler deploy` uploads and stays production-safe (scripts/check-deploy.mjs holds it to
# that), so development mode and the outbox exist only where this script passes them.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh
export PATH="$ROOT/node_modules/.bin:$HOME/.cargo/bin:$PATH"

# Appends NAME=<32 random bytes, base64url> to .dev.vars unless NAME is already there. Each
# secret on its own, so a .dev.vars from before a secret existed gets just the new one.
ensure_secret() {
    local name="$1" what="$2"
    if grep -q "^$name=" .dev.vars 2>/dev/null; then
        return
    fi
    echo "[dev] generating $what into .dev.vars" >&2
    (
        umask 077 # secrets: readable by this user only, when the file is created here
        # A hand-edited file may lack its last newline; the new line must not join it.
        if [ -s .dev.vars ] && [ -n "$(tail -c 1 .dev.vars)" ]; then
            echo >> .dev.vars
        fi
        SECRET_NAME="$name" node -e \
            'console.log(process.env.SECRET_NAME + "=" + require("crypto").randomBytes(32).toString("base64url"))' \
            >> .dev.vars
    )
}
ensure_secret JWT_SIGNING_KEY "a local Ed25519 signing key"
ensure_secret IDENTIFIER_DIGEST_KEY "a local identifier digest key"

PORT="${PORT:-8787}"
CONFIG_ARGS=()
DATABASE="${DATABASE:-d1}"
case "$DATABASE" in
d1)
    CI=true wrangler d1 migrations apply DB --local
    ;;
postgres)
    # PostgreSQL: DATABASE_URL's server when set, else a throw-away one from the
    # embedded-postgres package (removed when this script ends); migrated either way. Wrangler
    # reaches it through the Hyperdrive binding of a generated config (wrangler.toml plus that
    # binding, next to it so its relative paths still resolve).
    PG_LOG="$(mktemp)"
    node scripts/postgres.mjs > "$PG_LOG" &
    PG_PID=$!
    trap 'kill "$PG_PID" 2>/dev/null; wait "$PG_PID" 2>/dev/null; rm -f "$PG_LOG" "$ROOT/.wrangler-postgres.toml"' EXIT
    for _ in $(seq 1 120); do
        grep -q '^DATABASE_URL=' "$PG_LOG" && break
        kill -0 "$PG_PID" 2>/dev/null || { cat "$PG_LOG" >&2; echo "[dev] PostgreSQL did not start" >&2; exit 1; }
        sleep 0.5
    done
    DATABASE_URL="$(grep -m1 '^DATABASE_URL=' "$PG_LOG" | cut -d= -f2-)"
    [ -n "$DATABASE_URL" ] || { echo "[dev] PostgreSQL did not start in time" >&2; exit 1; }
    echo "[dev] PostgreSQL: $DATABASE_URL" >&2
    {
        cat wrangler.toml
        printf '\n[[hyperdrive]]\nbinding = "HYPERDRIVE"\nid = "local"\nlocalConnectionString = "%s"\n' "$DATABASE_URL"
    } > "$ROOT/.wrangler-postgres.toml"
    CONFIG_ARGS=(--config "$ROOT/.wrangler-postgres.toml")
    ;;
*)
    echo "[dev] DATABASE must be d1 or postgres" >&2
    exit 2
    ;;
esac
# Development mode: the outbox (GET /api/v1/dev/outbox), /metrics without a token, local
# hosts. The issuer names where tokens come from, so it follows the port, as do links. A
# name set in .dev.vars is left to it (wrangler would let --var win), so .dev.vars still
# overrides any of these, as it did when they were wrangler.toml's [vars].
DEV_VARS=(
    "ENVIRONMENT:development"
    "EMAIL_PROVIDER:outbox"
    "JWT_ISSUER:http://127.0.0.1:$PORT"
    "JWT_AUDIENCE:edge-auth-local"
    "ALLOWED_HOSTS:127.0.0.1,localhost"
    "APP_NAME:edge-auth (local)"
    "PUBLIC_BASE_URL:http://127.0.0.1:$PORT"
    "REQUIRE_EMAIL_VERIFICATION:false"
    "DATABASE:$DATABASE"
)
var_args=()
for pair in "${DEV_VARS[@]}"; do
    if grep -Eq "^[[:space:]]*(export[[:space:]]+)?${pair%%:*}[[:space:]]*=" .dev.vars; then
        continue
    fi
    var_args+=(--var "$pair")
done
if [ "$DATABASE" = postgres ]; then
    # Not exec: the trap must stop the PostgreSQL server when wrangler ends.
    wrangler dev "${CONFIG_ARGS[@]}" --ip 127.0.0.1 --port "$PORT" "${var_args[@]}"
else
    exec wrangler dev --ip 127.0.0.1 --port "$PORT" "${var_args[@]}"
fi
