#!/usr/bin/env bash
# Installs what llmwire needs (Debian packages) and builds it. Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(build-essential cmake ninja-build clang libclang-rt-14-dev libgtest-dev libcli11-dev
          python3 python3-numpy clang-format
          gcc-riscv64-unknown-elf picolibc-riscv64-unknown-elf qemu-system-misc)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "== installing: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

echo "== building (cmake --preset default)"
cmake --preset default >/dev/null
cmake --build --preset default
echo "== built: build/llmwire"
