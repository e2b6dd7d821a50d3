#!/usr/bin/env bash
# Builds the release Worker into build/ (wasm + JS glue) with worker-build.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
# worker-build would download wasm-bindgen from GitHub; use the one setup installed.
WASM_BINDGEN_BIN="$(command -v wasm-bindgen)"
export WASM_BINDGEN_BIN
worker-build --release
