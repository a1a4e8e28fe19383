#!/usr/bin/env bash
# Builds the emulated board's firmware (bare-metal rv32imafc, see src/platform/rv32) into
# build-rv32/llmwire-rv32.elf. Incremental; exits 77 (skip) if the cross compiler is missing.
# Run a board with `llmwire sim --emulate` (docs in README.md, "Emulated boards").
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v riscv64-unknown-elf-g++ >/dev/null; then
  echo "build_rv32: riscv64-unknown-elf-g++ not found (scripts/setup.sh installs it)" >&2
  exit 77
fi
build=${RV32_BUILD:-build-rv32}
make -s -f src/platform/rv32/rv32.mk BUILD="$build" -j"${JOBS:-2}"
riscv64-unknown-elf-size "$build/llmwire-rv32.elf" | sed 's/^/build_rv32: /'
