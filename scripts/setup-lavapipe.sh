#!/usr/bin/env bash
# Makes sure a Vulkan adapter exists for the wgpu backend's tests: on a machine without a GPU driver, Mesa's
# lavapipe (Vulkan on the CPU; correct but slow, for correctness only). Installs mesa-vulkan-drivers and
# libvulkan1 with apt-get when no lavapipe driver is registered (as root, or through passwordless sudo).
# Without apt-get it only says what is missing: the wgpu tests then fail with the backend's message
# (MXRT_SKIP_WGPU=1 skips them on purpose).
set -euo pipefail
if ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1 && ldconfig -p 2>/dev/null | grep -q libvulkan.so.1; then
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "setup-lavapipe: no apt-get here; install Mesa's Vulkan drivers (lavapipe) and the Vulkan loader" >&2
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  sudo="sudo -n"
fi
echo "installing Mesa's lavapipe (mesa-vulkan-drivers, libvulkan1) for the wgpu tests ..." >&2
export DEBIAN_FRONTEND=noninteractive
if ! $sudo apt-get install -y -qq --no-install-recommends mesa-vulkan-drivers libvulkan1 >/dev/null 2>&1; then
  $sudo apt-get update -qq >/dev/null
  $sudo apt-get install -y -qq --no-install-recommends mesa-vulkan-drivers libvulkan1 >/dev/null
fi
