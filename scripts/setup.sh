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
  if ! { $SUDO apt-get update -qq &&
         DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null; }; then
    # No network (or no apt): build with what is installed; say what is missing.
    echo "== could not install ${missing[*]}; building with what is installed" >&2
  fi
fi
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
tests=ON
installed libgtest-dev || { tests=OFF; echo "== libgtest-dev missing: building without the tests" >&2; }

echo "== building (cmake --preset default)"
cmake --preset default -DLLMWIRE_TESTS=$tests >/dev/null
cmake --build --preset default
echo "== built: build/llmwire"
echo "   the default model ships in models/ (stories260K): scripts/story.sh tells a story now"
