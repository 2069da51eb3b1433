#!/usr/bin/env bash
# Provisions the native TensorFlow backend (@tensorflow/tfjs-node 4.22.0) on machines that cannot
# reach the host its install script downloads libtensorflow from. Only npm and PyPI are used:
# the TensorFlow 2.9.1 C API (the version tfjs-node 4.22 is built against) is taken from the
# `tensorflow-cpu` wheel, and tfjs-node's own binding is compiled against it with node-gyp.
#
#   usage: cli/provision-tfjs-node.sh [project-dir]     (idempotent; a no-op when it already loads)
#
# Needs: x86-64 Linux with AVX, glibc >= 2.17, python3 + pip, gcc/g++/make, Node headers under
# <node prefix>/include/node. The wheel is cached in $PNEUMOGAN_CACHE_DIR/wheels (~200 MB).
#
# The wheel keeps the C API in _pywrap_tensorflow_internal.so, which also references ~190 Python
# C-API symbols that are never called from the C API. A small stub library defines them (data as
# dummy buffers, functions that abort with a message) so Node can load the library.
set -euo pipefail
PROJ=$(cd "${1:-$(dirname "$0")/..}" && pwd)
CACHE=${PNEUMOGAN_CACHE_DIR:-$HOME/.cache/pneumogan}
TF_VERSION=2.9.1
TFJS_VERSION=4.22.0
TFN="$PROJ/node_modules/@tensorflow/tfjs-node"

loads() {
  (cd "$PROJ" && TF_CPP_MIN_LOG_LEVEL=2 node -e "
    const tf = require('@tensorflow/tfjs-node');
    const y = tf.conv2d(tf.ones([1, 4, 4, 1]), tf.ones([2, 2, 1, 1]), 1, 'same').sum().dataSync()[0];
    if (tf.getBackend() !== 'tensorflow' || y !== 49) process.exit(1);" >/dev/null 2>&1)
}

if [ -f "$TFN/package.json" ] && loads; then
  echo "ok   native TensorFlow backend (tfjs-node $TFJS_VERSION) already loads"
  exit 0
fi
case "$(uname -sm)" in
  "Linux x86_64") ;;
  *) echo "skip native TensorFlow backend: prebuilt wheels exist here only for Linux x86-64 ($(uname -sm)); the pure-JS backend will be used"; exit 0 ;;
esac
grep -qw avx /proc/cpuinfo || { echo "skip native TensorFlow backend: this CPU lacks AVX, which the TensorFlow wheel needs"; exit 0; }

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
echo "...  provisioning the native TensorFlow backend (tensorflow-cpu $TF_VERSION wheel from PyPI, tfjs-node binding built locally)"

if [ ! -f "$TFN/package.json" ]; then
  # An optional dependency whose download failed is removed by npm; bring it back without scripts.
  (cd "$PROJ" && npm install --ignore-scripts --no-save --no-audit --no-fund "@tensorflow/tfjs-node@$TFJS_VERSION" >/dev/null)
fi

mkdir -p "$CACHE/wheels"
WHL=$(ls "$CACHE"/wheels/tensorflow_cpu-"$TF_VERSION"-*.whl 2>/dev/null | head -1 || true)
if [ -z "$WHL" ]; then
  python3 -m pip download --quiet --no-deps --only-binary=:all: "tensorflow-cpu==$TF_VERSION" \
    --python-version 3.10 --platform manylinux2014_x86_64 -d "$CACHE/wheels"
  WHL=$(ls "$CACHE"/wheels/tensorflow_cpu-"$TF_VERSION"-*.whl | head -1)
fi

python3 - "$WHL" "$WORK/x" <<'PY'
import sys, zipfile, fnmatch
whl, dest = sys.argv[1], sys.argv[2]
want = ['tensorflow/libtensorflow_framework.so.2', 'tensorflow/python/_pywrap_tensorflow_internal.so',
        'tensorflow/include/tensorflow/c/*', 'tensorflow/include/tensorflow/core/platform/ctstring*.h']
with zipfile.ZipFile(whl) as z:
    z.extractall(dest, [n for n in z.namelist() if any(fnmatch.fnmatch(n, w) for w in want)])
PY

# binding.gyp links -ltensorflow from deps/lib and sets the addon's rpath to it.
rm -rf "$TFN/deps" && mkdir -p "$TFN/deps/lib" "$TFN/deps/include/tensorflow/core/platform"
mv "$WORK/x/tensorflow/python/_pywrap_tensorflow_internal.so" "$WORK/x/tensorflow/libtensorflow_framework.so.2" "$TFN/deps/lib/"
ln -sf _pywrap_tensorflow_internal.so "$TFN/deps/lib/libtensorflow.so"
ln -sf libtensorflow_framework.so.2 "$TFN/deps/lib/libtensorflow_framework.so"
cp -r "$WORK/x/tensorflow/include/tensorflow/c" "$TFN/deps/include/tensorflow/"
cp "$WORK/x/tensorflow/include/tensorflow/core/platform/"ctstring*.h "$TFN/deps/include/tensorflow/core/platform/"

readelf --dyn-syms -W "$TFN/deps/lib/_pywrap_tensorflow_internal.so" \
  | awk '$7=="UND" && $5=="GLOBAL" && $8 ~ /^_?Py/ {print $8}' | sort -u > "$WORK/pysyms.txt"
{
  echo '#include <stdio.h>'
  echo '#include <stdlib.h>'
  echo 'static void die(const char*n){fprintf(stderr,"pneumogan pystub: Python C-API function %s called from TensorFlow\n",n);abort();}'
  while read -r s; do
    if [[ $s =~ (_Type$|^PyExc_|^_Py_.*Struct$) ]]; then echo "__attribute__((visibility(\"default\"))) char $s[256];"
    else echo "__attribute__((visibility(\"default\"))) void $s(void){die(\"$s\");}"; fi
  done < "$WORK/pysyms.txt"
} > "$WORK/pystub.c"
gcc -O2 -shared -fPIC -Wl,-soname,libtfjs_pystub.so -o "$TFN/deps/lib/libtfjs_pystub.so" "$WORK/pystub.c"

NODEDIR=$(node -p "require('path').resolve(process.execPath, '..', '..')")
[ -f "$NODEDIR/include/node/node_api.h" ] || { echo "FAIL no Node headers under $NODEDIR/include/node (Debian: apt-get install libnode-dev)"; exit 1; }
NODE_GYP="$(dirname "$(readlink -f "$(command -v npm)")")/../node_modules/node-gyp/bin/node-gyp.js"
[ -f "$NODE_GYP" ] || NODE_GYP="$(npm root -g)/npm/node_modules/node-gyp/bin/node-gyp.js"
ADDON=$(cd "$PROJ" && node -p "require('@mapbox/node-pre-gyp').find(require.resolve('@tensorflow/tfjs-node/package.json'))")
NAPI=$(basename "$(dirname "$ADDON")"); NAPI=${NAPI#napi-v}
if ! (cd "$TFN" && LDFLAGS="-Wl,--no-as-needed -L$TFN/deps/lib -ltfjs_pystub" node "$NODE_GYP" rebuild \
      --nodedir="$NODEDIR" --module_name=tfjs_binding --module_path="$(dirname "$ADDON")" --napi_build_version="$NAPI" >"$WORK/node-gyp.log" 2>&1); then
  tail -30 "$WORK/node-gyp.log"
  echo "FAIL building the tfjs-node binding (log above)"
  exit 1
fi
rm -rf "$TFN/build"
loads || { echo "FAIL the native TensorFlow backend was built but does not load"; exit 1; }
echo "ok   native TensorFlow backend: tfjs-node $TFJS_VERSION on TensorFlow $TF_VERSION ($(du -sh "$TFN/deps" | cut -f1) in node_modules)"
