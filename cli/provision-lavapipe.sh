#!/usr/bin/env bash
# Provisions lavapipe, Mesa's Vulkan driver on the CPU, so the WebGPU backend (Dawn's dawn.node
# from the `webgpu` package) can run on a machine without a GPU: `npm run setup:lavapipe`.
# test/unit/webgpu-kernels.test.ts then checks this project's training ops on WebGPU against
# the CPU backend; without it those tests skip.
#
# Debian 12's own lavapipe (Mesa 22.3) lacks the Vulkan features Dawn requires
# (shaderUniform*ArrayDynamicIndexing); bookworm-backports' Mesa 25.0 has them. Only the driver
# library is taken from backports (apt-get download + dpkg -x into the cache; nothing of the
# system's Mesa changes); its runtime libraries and the Vulkan loader come from bookworm itself.
# The driver manifest written here names the library by absolute path; point VK_DRIVER_FILES at
# it (the tests do). Dawn reports lavapipe as a software adapter, which the backend ladder
# never picks on its own.
#
#   usage: cli/provision-lavapipe.sh      (idempotent; needs Debian 12 and root for apt-get install)
#   result: $PNEUMOGAN_CACHE_DIR/lavapipe/lvp_icd.json
set -euo pipefail
CACHE=${PNEUMOGAN_CACHE_DIR:-$HOME/.cache/pneumogan}
DIR="$CACHE/lavapipe"
MESA_VERSION=25.0.7-2~bpo12+1
ICD="$DIR/lvp_icd.json"
# libvulkan_lvp.so's NEEDED libraries, all in bookworm main, and the Vulkan loader Dawn opens.
RUNTIME_PACKAGES="libvulkan1 libllvm15 zlib1g libzstd1 libdrm2 libexpat1 libxcb1 libxcb-randr0 libx11-xcb1 libxcb-dri3-0 libxcb-present0 libxcb-xfixes0 libxcb-sync1 libxcb-shm0 libxshmfence1 libwayland-client0"

if [ -f "$ICD" ] && [ -f "$DIR/.mesa-$MESA_VERSION" ]; then
  echo "ok   lavapipe $MESA_VERSION already provisioned: VK_DRIVER_FILES=$ICD"
  exit 0
fi
. /etc/os-release 2>/dev/null || true
if [ "$(uname -m)" != x86_64 ] || [ "${VERSION_CODENAME:-}" != bookworm ]; then
  echo "skip lavapipe: this script knows Debian 12 (bookworm) on x86-64 only (here: ${PRETTY_NAME:-unknown} $(uname -m)); the WebGPU tests will skip"
  exit 0
fi
MISSING=$(for p in $RUNTIME_PACKAGES; do dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"; done)
if [ -n "$MISSING" ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "skip lavapipe: needs these Debian packages installed (as root): $(echo $MISSING)"
    exit 0
  fi
  echo "...  apt-get install $(echo $MISSING)"
  apt-get install -y -qq --no-install-recommends $MISSING >/dev/null
fi

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/lists/partial" "$WORK/archives/partial"
echo "deb http://deb.debian.org/debian bookworm-backports main" > "$WORK/sources.list"
APT=(-o "Dir::Etc::sourcelist=$WORK/sources.list" -o Dir::Etc::sourceparts=- -o "Dir::State::Lists=$WORK/lists"
  -o "Dir::Cache::archives=$WORK/archives" -o APT::Sandbox::User=root)
echo "...  downloading mesa-vulkan-drivers $MESA_VERSION from bookworm-backports (11 MB)"
apt-get "${APT[@]}" update -qq
(cd "$WORK" && apt-get "${APT[@]}" download -qq "mesa-vulkan-drivers=$MESA_VERSION")
rm -rf "$DIR" && mkdir -p "$DIR"
dpkg-deb -x "$WORK"/mesa-vulkan-drivers_*.deb "$WORK/root"
cp "$WORK/root/usr/lib/x86_64-linux-gnu/libvulkan_lvp.so" "$DIR/"
cat > "$ICD" <<JSON
{
  "file_format_version": "1.0.0",
  "ICD": { "library_path": "$DIR/libvulkan_lvp.so", "api_version": "1.4.305" }
}
JSON
if ldd "$DIR/libvulkan_lvp.so" | grep -q 'not found'; then
  ldd "$DIR/libvulkan_lvp.so" | grep 'not found'
  echo "FAIL lavapipe misses libraries (above)"
  exit 1
fi
touch "$DIR/.mesa-$MESA_VERSION"
echo "ok   lavapipe $MESA_VERSION: VK_DRIVER_FILES=$ICD"
