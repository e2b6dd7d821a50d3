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
# ...and wasm-opt: Debian's binaryen is too old to parse the module; npm's (pinned in
# package.json) is current. The passes are chosen in Cargo.toml by measurement.
export WASM_OPT_BIN="$ROOT/node_modules/binaryen/bin/wasm-opt"
worker-build --release

# Static assets for /docs and /redoc (served through the Worker's ASSETS binding): our pages
# from assets/, the libraries from their npm packages, so nothing loads from a CDN.
ASSETS="$ROOT/build/assets"
rm -rf "$ASSETS"
mkdir -p "$ASSETS"
cp -R "$ROOT/assets/." "$ASSETS/"
SWAGGER="$ROOT/node_modules/swagger-ui-dist"
cp "$SWAGGER/swagger-ui-bundle.js" "$SWAGGER/swagger-ui.css" "$SWAGGER/favicon-32x32.png" "$ASSETS/docs/"
# ReDoc 2 always renders a logo from its CDN in the sidebar badge and hides it when it fails
# to load. The CSP would block that request and log a console error on every visit; point it
# at an empty inline image instead, which fails the same way without leaving the origin. A
# ReDoc upgrade that adds another CDN reference stops the build here rather than at the CSP.
sed 's|https://cdn\.redoc\.ly/redoc/logo-mini\.svg|data:,|g' \
    "$ROOT/node_modules/redoc/bundles/redoc.standalone.js" > "$ASSETS/redoc/redoc.standalone.js"
if grep -q 'cdn\.redoc\.ly' "$ASSETS/redoc/redoc.standalone.js"; then
    echo "[build] redoc.standalone.js still refers to cdn.redoc.ly: update scripts/build.sh" >&2
    exit 1
fi
