#!/usr/bin/env bash
# Installs the Debian packages dtask builds and tests with (only those missing); sourced or run.
set -euo pipefail
DTASK_PACKAGES=(
  g++ meson ninja-build pkg-config
  libzmq3-dev cppzmq-dev nlohmann-json3-dev libspdlog-dev doctest-dev libcli11-dev
  liblz4-dev  # spill files' compression (src/worker/spill_files.cpp)
  libcpp-httplib-dev  # the dashboard's HTTP server (src/dashboard)
  chromium  # the dashboard and report tests load pages headless (tests/dashboard)
  libopenmpi-dev openmpi-bin
  clang libclang-rt-14-dev  # the libFuzzer targets (tests/fuzz/run.sh)
)
missing=()
for p in "${DTASK_PACKAGES[@]}" "$@"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then missing+=("$p"); fi
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi
