#!/usr/bin/env bash
# The portable boundary, enforced: compiles src/engine, src/link, src/pipeline and src/runtime
# for a bare-metal 32-bit MCU (rv32imafc, picolibc, no libstdc++), links them into one object
# and fails if they need anything from outside beyond string.h-level libc, snprintf (nano
# printf, no floats), sqrtf and the compiler's own arithmetic helpers — or if new/delete,
# exceptions, RTTI, iostream, threads or static-init guards appear at all.
set -euo pipefail
cd "$(dirname "$0")/.."
CXX=${RV32_CXX:-riscv64-unknown-elf-g++}
if ! command -v "$CXX" >/dev/null; then
  echo "check_portable: $CXX not found (scripts/setup.sh installs gcc-riscv64-unknown-elf)" >&2
  exit 2
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
flags=(-march=rv32imafc -mabi=ilp32f -O2 -std=c++17 -ffreestanding -fno-exceptions -fno-rtti
       -fno-threadsafe-statics -fno-use-cxa-atexit -ffp-contract=off -Wall -Wextra -Werror
       -Wno-missing-field-initializers --specs=picolibc.specs -Isrc)
objs=()
for f in src/engine/*.cpp src/link/*.cpp src/pipeline/*.cpp src/runtime/*.cpp; do
  o="$out/$(echo "$f" | tr / _).o"
  "$CXX" "${flags[@]}" -c "$f" -o "$o"
  objs+=("$o")
done
riscv64-unknown-elf-ld -m elf32lriscv -r -o "$out/portable.o" "${objs[@]}"

# What the portable code may take from outside.
allowed='^(memcpy|memchr|memmove|memset|memcmp|strlen|strnlen|strcmp|strncmp|strchr|snprintf|vsnprintf|sqrtf|__cxa_pure_virtual|__(add|sub|mul|div|neg|cmp|eq|ne|lt|le|gt|ge|unord|fix|fixuns|float|floatun|extend|trunc|ashl|ashr|lshr|udiv|umod|mod|clz|ctz|popcount|bswap)[a-z0-9]*)$'
forbidden='^(_Znw.*|_Zna.*|_Zdl.*|_Zda.*|__cxa_(allocate|throw|begin_catch|end_catch|guard|atexit|rethrow).*|_Unwind.*|__gxx_personality.*|_ZTI.*|_ZTS.*|_ZSt4cout|_ZNSo.*|pthread_.*|malloc|calloc|realloc|free|printf|puts|fopen|fwrite|exit|abort)$'
undef=$(riscv64-unknown-elf-nm -u "$out/portable.o" | awk '{print $2}' | sort -u)
all=$(riscv64-unknown-elf-nm "$out/portable.o" | awk '{print $NF}' | sort -u)
bad=0
for s in $undef; do
  if ! [[ $s =~ $allowed ]]; then echo "check_portable: needs '$s' from outside the portable code"; bad=1; fi
done
if hits=$(echo "$all" | grep -E "$forbidden"); then
  echo "check_portable: forbidden symbols present:"; echo "$hits" | sed 's/^/  /'; bad=1
fi
size=$(riscv64-unknown-elf-size "$out/portable.o" | awk 'NR==2{print $1" text, "$2" data, "$3" bss"}')
if ((bad)); then
  echo "check_portable: FAILED (portable code must stay freestanding: see docs/ARCHITECTURE.md)"
  exit 1
fi
echo "check_portable: ok — ${#objs[@]} files, rv32imafc bare metal, external: $(echo $undef | tr '\n' ' ')"
echo "check_portable: portable code size $size bytes"
