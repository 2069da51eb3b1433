#!/usr/bin/env bash
# Runs the GPU check from a pack made by `npm run gpu:pack`, on a Linux x86-64 machine with an
# NVIDIA driver and no internet: unpacks Node and dawn.node, installs the Vulkan loader from the
# .debs when the machine has none (dpkg -x into /, then ldconfig: needs root), points the Vulkan
# loader at NVIDIA's driver manifest, and runs the bench and one smoke trial's GPU steps on WebGPU
# (gpu/run.ts), with a PyTorch column when `python3` has torch and torchvision; `--trial-only
# --paper-trial --budget-s 590` runs one `paper` trial's instead, on the pack's X-rays (data/).
#
#   bash run.sh [gpu/run.ts options]     results: $OUT, else ./results next to this script
#
# Environment: VK_DRIVER_FILES (default: the first nvidia_icd.json found), PNEUMOGAN_BACKEND
# (default webgpu), PNEUMOGAN_BENCH_PYTHON (default python3), PNEUMOGAN_PACK_NODE (a Node binary
# to use instead of the packed one, for trying the pack on a development machine).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-$HERE/results}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/run.log") 2>&1
t0=$(date +%s)

unpack() { # unpack FILE.xz FILE
  [ -f "$2" ] && return 0
  if command -v xz >/dev/null; then xz -dc "$1" > "$2.tmp"
  else python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$1" "$2.tmp"; fi
  mv "$2.tmp" "$2"
}
unpack "$HERE/node.xz" "$HERE/node" && chmod +x "$HERE/node"
unpack "$HERE/app/node_modules/webgpu/dist/linux-x64/dawn.node.xz" "$HERE/app/node_modules/webgpu/dist/linux-x64/dawn.node"
NODE=${PNEUMOGAN_PACK_NODE:-$HERE/node}

if ! ldconfig -p 2>/dev/null | grep -q 'libvulkan.so.1 '; then
  if [ "$(id -u)" = 0 ]; then
    echo "...  installing the Vulkan loader from the pack's .debs (dpkg -x /)"
    for deb in "$HERE"/debs/*.deb; do dpkg -x "$deb" /; done
    ldconfig
  else
    echo "WARN no libvulkan.so.1 and not root: cannot install the pack's Vulkan loader; WebGPU will find no adapter"
  fi
fi
if [ -z "${VK_DRIVER_FILES:-}" ]; then
  for icd in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json \
    /etc/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.x86_64.json; do
    if [ -f "$icd" ]; then export VK_DRIVER_FILES=$icd; break; fi
  done
fi
echo "...  VK_DRIVER_FILES=${VK_DRIVER_FILES:-unset}; nvidia-smi: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1 || echo none)"
export PNEUMOGAN_BACKEND=${PNEUMOGAN_BACKEND:-webgpu}
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
# The pack's real X-rays, for --paper-trial (cli/gpu/pack.sh copies them when it has the dataset).
DATA_ARGS=()
[ -f "$HERE/data/manifest.json" ] && DATA_ARGS=(--data "$HERE/data")
"$NODE" "$HERE/app/gpu-run.mjs" --out "$OUT" "${DATA_ARGS[@]}" "$@"
echo "ok   GPU check finished in $(($(date +%s) - t0)) s; results in $OUT"
