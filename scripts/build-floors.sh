#!/usr/bin/env bash
# Builds the bench's Rust floor Worker (benches/floors/rust-noop/) into its own build/, as
# scripts/build.sh builds edge-auth, but only when that build is missing or older than the
# floor's sources: `npm run bench` calls this, so a bench pays for the build once, and
# `npm test` / scripts/build.sh never do. Its target/ is its own (the crate is not in our
# package), so this never touches the main Worker's cache either.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FLOOR="$ROOT/benches/floors/rust-noop"
cd "$FLOOR"

WASM="build/index_bg.wasm"
if [ -f "$WASM" ] && [ -f build/index.js ] \
    && [ -z "$(find src Cargo.toml Cargo.lock -newer "$WASM" -print -quit)" ]; then
    echo "[build-floors] rust-noop is up to date" >&2
    exit 0
fi

bash "$ROOT/scripts/setup.sh"
export PATH="$HOME/.cargo/bin:$PATH"
# As scripts/build.sh: the wasm-bindgen setup installed (the floor's Cargo.lock pins the same
# library version) and npm's wasm-opt, not worker-build's downloads or Debian's binaryen.
WASM_BINDGEN_BIN="$(command -v wasm-bindgen)"
export WASM_BINDGEN_BIN
export WASM_OPT_BIN="$ROOT/node_modules/binaryen/bin/wasm-opt"
echo "[build-floors] building rust-noop" >&2
worker-build --release
