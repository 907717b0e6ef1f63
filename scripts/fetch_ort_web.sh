#!/usr/bin/env bash
# Fetch ONNX Runtime Web (pinned) for the "run in the browser" switch of `foveal serve`.
#
# npm installs the package into a cache folder; only the wasm-only, single-threaded set the page
# needs is copied to src/foveal/serve/static/ort/ (git-ignored: the .wasm file is ~10 MB).
# The page works without it: the switch is hidden and /health says browser_runtime: false.
#
# usage: scripts/fetch_ort_web.sh            (ORT_WEB_VERSION / ORT_WEB_CACHE override the defaults)
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION="${ORT_WEB_VERSION:-1.22.0}"
CACHE="${ORT_WEB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/foveal/onnxruntime-web-$VERSION}"
TARGET=src/foveal/serve/static/ort
# ort.wasm.min.js: the wasm-only bundle (no WebGL/WebGPU/WebNN); it loads the .mjs glue and the
# plain (non-JSEP) .wasm binary, which run single-threaded without cross-origin isolation.
FILES=(ort.wasm.min.js ort-wasm-simd-threaded.mjs ort-wasm-simd-threaded.wasm)

if ! command -v npm >/dev/null 2>&1; then
    echo "npm is not installed: cannot fetch onnxruntime-web (the page will run without the browser switch)" >&2
    exit 1
fi
DIST="$CACHE/node_modules/onnxruntime-web/dist"
if [ ! -f "$DIST/${FILES[0]}" ]; then
    mkdir -p "$CACHE"
    npm install --prefix "$CACHE" --no-save --no-audit --no-fund --ignore-scripts --loglevel=error \
        "onnxruntime-web@$VERSION" >&2
fi
mkdir -p "$TARGET"
for f in "${FILES[@]}"; do
    cp "$DIST/$f" "$TARGET/$f"
done
printf '%s\n' "$VERSION" > "$TARGET/VERSION"
echo "onnxruntime-web $VERSION -> $TARGET ($(du -sh "$TARGET" | cut -f1))"
