#!/usr/bin/env bash
# Provisions the CUDA backend (@tensorflow/tfjs-node-gpu 4.22.0) on CUDA 12, from PyPI only:
# `npm run setup:gpu`. Opt-in, not part of `npm run setup` or CI (the wheels are ~2.4 GB).
#
# tfjs-node-gpu 4.22's prebuilt binding links TensorFlow 2.9.1 for CUDA 11.2, which CUDA 12
# machines cannot load (and then run on the CPU). Here its own binding is compiled with node-gyp
# against the TensorFlow C API of the `tensorflow` 2.18.1 wheel (CUDA 12.5, cuDNN 9.3): its
# libtensorflow_cc.so.2 exports the whole C and eager C API the binding calls (TF_*, TFE_*) and,
# unlike 2.9's _pywrap library, needs no Python. The CUDA libraries are the nvidia-*-cu12 wheels
# that `tensorflow[and-cuda]==2.18.1` pins (read from the wheel's METADATA), unpacked so that
# TensorFlow's own RUNPATH finds them:
#
#   node_modules/@tensorflow/tfjs-node-gpu/
#     lib/napi-v8/tfjs_binding.node     RUNPATH $ORIGIN/../../deps/lib
#     deps/lib/libtensorflow_cc.so.2    RUNPATH ...:$ORIGIN/../nvidia/cudnn/lib:$ORIGIN/../nvidia/cublas/lib:...
#     deps/lib/libtensorflow_framework.so.2
#     deps/nvidia/<cublas|cudnn|cuda_runtime|...>/lib/*.so.*
#
# No LD_LIBRARY_PATH and no system CUDA toolkit: only the NVIDIA driver (libcuda.so.1) comes from
# the machine. Libraries TensorFlow dlopens that its RUNPATH does not list (curand, cupti) get a
# link in deps/lib, which its RUNPATH ($ORIGIN/) does list.
#
#   usage: cli/provision-tfjs-node-gpu.sh [project-dir]     (idempotent)
#
# Needs: x86-64 Linux, python3 + pip, gcc/g++/make, Node headers. Disk: ~2.4 GB of wheels in
# $PNEUMOGAN_CACHE_DIR/wheels-gpu, ~3.5 GB unpacked in node_modules.
set -euo pipefail
PROJ=$(cd "${1:-$(dirname "$0")/..}" && pwd)
CACHE=${PNEUMOGAN_CACHE_DIR:-$HOME/.cache/pneumogan}
TF_VERSION=2.18.1
TFJS_VERSION=4.22.0
TFN="$PROJ/node_modules/@tensorflow/tfjs-node-gpu"
WHEELS="$CACHE/wheels-gpu"
# The CUDA libraries TensorFlow needs to train; nccl (multi-GPU collectives) and nvcc (XLA's
# ptxas) are left out: eager tfjs ops use neither.
NVIDIA_PACKAGES="nvidia-cublas-cu12 nvidia-cuda-cupti-cu12 nvidia-cuda-nvrtc-cu12 nvidia-cuda-runtime-cu12 nvidia-cudnn-cu12 nvidia-cufft-cu12 nvidia-curand-cu12 nvidia-cusolver-cu12 nvidia-cusparse-cu12 nvidia-nvjitlink-cu12"

# Builds the tensor on the default device and reads it back; prints the device TensorFlow chose.
probe() {
  (cd "$PROJ" && node -e "
    const tf = require('@tensorflow/tfjs-node-gpu');
    const y = tf.conv2d(tf.ones([1, 4, 4, 1]), tf.ones([2, 2, 1, 1]), 1, 'same').sum().dataSync()[0];
    if (tf.getBackend() !== 'tensorflow' || y !== 49) process.exit(1);
    console.log(tf.backend().isUsingGpuDevice ? 'GPU' : 'CPU');")
}

case "$(uname -sm)" in
  "Linux x86_64") ;;
  *) echo "skip CUDA backend: TensorFlow's CUDA wheels exist only for Linux x86-64 ($(uname -sm))"; exit 0 ;;
esac
if [ -f "$TFN/deps/.pneumogan-tf-$TF_VERSION" ] && DEVICE=$(probe 2>/dev/null); then
  echo "ok   CUDA backend already provisioned (tfjs-node-gpu $TFJS_VERSION on TensorFlow $TF_VERSION); TensorFlow runs on the $DEVICE here"
  exit 0
fi

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
echo "...  provisioning the CUDA backend: tensorflow $TF_VERSION + nvidia-*-cu12 wheels from PyPI, tfjs-node-gpu binding built locally"

if [ ! -f "$TFN/package.json" ]; then
  # An optional dependency whose download failed is removed by npm; bring it back without scripts.
  (cd "$PROJ" && npm install --ignore-scripts --no-save --no-audit --no-fund "@tensorflow/tfjs-node-gpu@$TFJS_VERSION" >/dev/null)
fi

mkdir -p "$WHEELS"
pipdl() {
  python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d "$WHEELS" "$@"
}
TF_WHL=$(ls "$WHEELS"/tensorflow-"$TF_VERSION"-*.whl 2>/dev/null | head -1 || true)
if [ -z "$TF_WHL" ]; then
  echo "...  downloading tensorflow $TF_VERSION (615 MB)"
  pipdl "tensorflow==$TF_VERSION"
  TF_WHL=$(ls "$WHEELS"/tensorflow-"$TF_VERSION"-*.whl | head -1)
fi
# The exact CUDA library versions TensorFlow was built and tested with: its and-cuda extra.
PINS=$(python3 - "$TF_WHL" "$NVIDIA_PACKAGES" <<'PY'
import re, sys, zipfile
whl, wanted = sys.argv[1], set(sys.argv[2].split())
with zipfile.ZipFile(whl) as z:
    meta = z.read(next(n for n in z.namelist() if n.endswith('.dist-info/METADATA'))).decode()
pins = dict(re.findall(r"^Requires-Dist: (nvidia-[\w-]+) ?==([\w.]+) ; extra == 'and-cuda'$", meta, re.M))
missing = wanted - pins.keys()
if missing: sys.exit(f"the tensorflow wheel pins no {sorted(missing)} in its and-cuda extra")
print(' '.join(f'{p}=={pins[p]}' for p in sorted(wanted)))
PY
)
NEED=""
for pin in $PINS; do
  name=${pin%%==*}; version=${pin#*==}
  ls "$WHEELS"/"${name//-/_}"-"$version"-*.whl >/dev/null 2>&1 || NEED="$NEED $pin"
done
if [ -n "$NEED" ]; then
  echo "...  downloading$NEED"
  # shellcheck disable=SC2086
  pipdl $NEED
fi

rm -rf "$TFN/deps" && mkdir -p "$TFN/deps/lib" "$TFN/deps/include" "$TFN/deps/nvidia"
python3 - "$TF_WHL" "$TFN/deps" "$WHEELS" "$PINS" <<'PY'
import fnmatch, os, shutil, sys, zipfile
whl, deps, wheels, pins = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4].split()
with zipfile.ZipFile(whl) as z:
    for name in z.namelist():
        if name in ('tensorflow/libtensorflow_cc.so.2', 'tensorflow/libtensorflow_framework.so.2'):
            dest = os.path.join(deps, 'lib', os.path.basename(name))
        elif not name.endswith('/') and name.startswith('tensorflow/include/') and any(fnmatch.fnmatch(name, 'tensorflow/include/' + p) for p in (
                'tensorflow/c/*', 'tensorflow/core/platform/*', 'tsl/platform/*', 'xla/tsl/platform/*', 'xla/tsl/c/*')):
            dest = os.path.join(deps, 'include', name[len('tensorflow/include/'):])
        else:
            continue
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with z.open(name) as src, open(dest, 'wb') as out:
            shutil.copyfileobj(src, out)
for pin in pins:
    name, version = pin.split('==')
    path = next(os.path.join(wheels, f) for f in os.listdir(wheels)
                if f.startswith(f"{name.replace('-', '_')}-{version}-") and f.endswith('.whl'))
    with zipfile.ZipFile(path) as z:
        for member in z.namelist():
            # nvidia/<package>/lib/<library>.so.N: the layout TensorFlow's RUNPATH expects.
            parts = member.split('/')
            if len(parts) == 4 and parts[0] == 'nvidia' and parts[2] == 'lib' and '.so' in parts[3]:
                dest = os.path.join(deps, member)
                os.makedirs(os.path.dirname(dest), exist_ok=True)
                with z.open(member) as src, open(dest, 'wb') as out:
                    shutil.copyfileobj(src, out)
PY
ln -sf libtensorflow_cc.so.2 "$TFN/deps/lib/libtensorflow.so"
ln -sf libtensorflow_framework.so.2 "$TFN/deps/lib/libtensorflow_framework.so"

# Libraries TensorFlow dlopens by soname that its RUNPATH does not list get a link in deps/lib.
RUNPATH=$(readelf -d "$TFN/deps/lib/libtensorflow_framework.so.2" "$TFN/deps/lib/libtensorflow_cc.so.2" \
  | sed -n 's/.*Library runpath: \[\(.*\)\]/\1/p' | tr ':' '\n' | sed "s#\$ORIGIN#$TFN/deps/lib#" | sort -u)
for lib in libcurand.so.10 libcupti.so.12; do
  for src in "$TFN"/deps/nvidia/*/lib/"$lib"; do
    [ -f "$src" ] || continue
    dir=$(dirname "$src")
    echo "$RUNPATH" | grep -qxF "$dir" || ln -sf "../nvidia/$(basename "$(dirname "$dir")")/lib/$lib" "$TFN/deps/lib/$lib"
  done
done

if readelf --dyn-syms -W "$TFN/deps/lib/libtensorflow_cc.so.2" | awk '$7=="UND" && $8 ~ /^_?Py/' | grep -q .; then
  echo "FAIL libtensorflow_cc.so.2 of tensorflow $TF_VERSION refers to Python symbols; this script expects a Python-free C API"
  exit 1
fi

NODEDIR=$(node -p "require('path').resolve(process.execPath, '..', '..')")
[ -f "$NODEDIR/include/node/node_api.h" ] || { echo "FAIL no Node headers under $NODEDIR/include/node (Debian: apt-get install libnode-dev)"; exit 1; }
NODE_GYP="$(dirname "$(readlink -f "$(command -v npm)")")/../node_modules/node-gyp/bin/node-gyp.js"
[ -f "$NODE_GYP" ] || NODE_GYP="$(npm root -g)/npm/node_modules/node-gyp/bin/node-gyp.js"
ADDON=$(cd "$PROJ" && node -p "require('@mapbox/node-pre-gyp').find(require.resolve('@tensorflow/tfjs-node-gpu/package.json'))")
NAPI=$(basename "$(dirname "$ADDON")"); NAPI=${NAPI#napi-v}
echo "...  compiling the tfjs-node-gpu binding against TensorFlow $TF_VERSION's C API (node-gyp)"
if ! (cd "$TFN" && node "$NODE_GYP" rebuild --nodedir="$NODEDIR" --module_name=tfjs_binding \
      --module_path="$(dirname "$ADDON")" --napi_build_version="$NAPI" >"$WORK/node-gyp.log" 2>&1); then
  tail -30 "$WORK/node-gyp.log"
  echo "FAIL building the tfjs-node-gpu binding (log above)"
  exit 1
fi
rm -rf "$TFN/build"

# Every CUDA library must resolve its own dependencies inside deps/ (or from the system's libc).
BAD=$(for so in "$TFN"/deps/nvidia/*/lib/*.so.*; do ldd "$so" | grep -E 'not found' | sed "s#^#$(basename "$so"): #"; done || true)
[ -z "$BAD" ] || { echo "$BAD"; echo "FAIL some CUDA libraries miss dependencies (above)"; exit 1; }
# Where TensorFlow's dlopen("libcudart.so.12") etc. land: a stub executable in deps/lib with
# libtensorflow_framework.so.2's RUNPATH ($ORIGIN literal, so it means the same folder) and every
# CUDA library as a NEEDED entry; ldd then resolves them exactly as TensorFlow's loader would
# (RUNPATH before the system's ld.so.cache; LD_LIBRARY_PATH is cleared for the check).
FW_RUNPATH=$(readelf -d "$TFN/deps/lib/libtensorflow_framework.so.2" | sed -n 's/.*Library runpath: \[\(.*\)\]/\1/p')
# (nvJitLink and nvrtc are not loaded by TensorFlow itself but by cusparse/cusolver and cuDNN,
# through their own RUNPATHs: ldd below lists them as resolved that way.)
CUDA_SONAMES="libcudart.so.12 libcublas.so.12 libcublasLt.so.12 libcudnn.so.9 libcufft.so.11 libcurand.so.10 libcusolver.so.11 libcusparse.so.12 libcupti.so.12"
LINK=""
for lib in $CUDA_SONAMES; do
  src=$(ls "$TFN"/deps/nvidia/*/lib/"$lib" 2>/dev/null | head -1)
  [ -n "$src" ] || { echo "FAIL $lib is in none of the nvidia-*-cu12 wheels unpacked to $TFN/deps/nvidia"; exit 1; }
  LINK="$LINK -L$(dirname "$src") -l:$lib"
done
CHECK="$TFN/deps/lib/cuda-resolution-check"
echo 'int main(void) { return 0; }' > "$WORK/check.c"
# shellcheck disable=SC2086
gcc "$WORK/check.c" -o "$CHECK" -Wl,--no-as-needed -Wl,--allow-shlib-undefined -Wl,--enable-new-dtags -Wl,-rpath,"$FW_RUNPATH" $LINK
RESOLVED=$(env -u LD_LIBRARY_PATH ldd "$CHECK")
rm -f "$CHECK"
echo "     CUDA libraries as TensorFlow resolves them (ldd, RUNPATH of libtensorflow_framework.so.2):"
while read -r lib arrow target _; do
  [ "$arrow" = "=>" ] || continue
  case "$lib" in lib*.so.*) ;; *) continue ;; esac
  case " $CUDA_SONAMES libnvJitLink.so.12 libnvrtc.so.12 " in *" $lib "*) ;; *) continue ;; esac
  case "$target" in
    "$TFN"/deps/*) echo "       $lib => $(realpath --relative-to="$PROJ" "$target")" ;;
    *) echo "FAIL $lib resolves to '$target', not to the wheels in $TFN/deps"; exit 1 ;;
  esac
done <<< "$RESOLVED"
DEVICE=$(probe) || { echo "FAIL the tfjs-node-gpu binding was built but does not run an op"; exit 1; }
touch "$TFN/deps/.pneumogan-tf-$TF_VERSION"
echo "ok   CUDA backend: tfjs-node-gpu $TFJS_VERSION on TensorFlow $TF_VERSION + CUDA 12 wheels ($(du -sh "$TFN/deps" | cut -f1) in node_modules); TensorFlow runs on the $DEVICE here"
[ "$DEVICE" = GPU ] || echo "     (no GPU found on this machine: \`npm run gpu:doctor\` says what is missing)"
