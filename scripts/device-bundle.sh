#!/bin/bash
# Packs what scripts/device-check.sh needs on a GPU machine that has PyTorch and nothing else (no
# network, no node): this machine's node binary, node's N-API headers and the npm packages that
# the CLI loads, into .device/bundle.tar.xz (ignored by git; the device tool carries it: carry
# [".device"], at most 64 MiB). Prints the bundle's size.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d node_modules ] || { echo "device-bundle: run make setup first (node_modules missing)" >&2; exit 1; }
out=.device
rm -rf "$out" && mkdir -p "$out/stage/bin" "$out/stage/include/node"
cp "$(command -v node)" "$out/stage/bin/node"
nodeinc="$(dirname "$(dirname "$(command -v node)")")/include/node"
for h in node_api.h node_api_types.h js_native_api.h js_native_api_types.h; do cp "$nodeinc/$h" "$out/stage/include/node/"; done
# Everything but the typesetter, the type checker and the browser driver (loaded only by vgl report,
# tsc and the browser tests).
tar -C . --exclude='node_modules/@myriaddreamin' --exclude='node_modules/@typescript' --exclude='node_modules/typescript' \
  --exclude='node_modules/playwright-core' -cf - node_modules | tar -C "$out/stage" -xf -
tar -C "$out/stage" -cf - . | xz -T2 -6 > "$out/bundle.tar.xz"
rm -rf "$out/stage"
du -h "$out/bundle.tar.xz"
