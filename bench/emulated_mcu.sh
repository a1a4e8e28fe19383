#!/usr/bin/env bash
# Emulated-MCU cost of a generated token for stories260K: one bare-metal rv32imafc board under
# qemu with -icount shift=0 (minstret then counts retired instructions exactly), the whole
# model in its flash, greedy story of N tokens. The firmware counts instructions between
# streamed tokens (forward pass + sampling + decoding) and logs the median; this script
# divides by the weight multiply-accumulates per token (every matmul's rows x cols, the
# classifier included; attention, norms and the rest are counted in the instructions only).
# Then the kernels alone (bench/rv32/kernel_bench.cpp): instructions per MAC of the tuned
# scalar32 kernel, the reference and a straightforward nibble-unpack loop, side by side in one
# run on the same weights (each checked bit-identical to the reference).
# Usage: bench/emulated_mcu.sh [LLMWIRE_BIN] [tokens]   (needs LLMWIRE_MODELS, qemu, the cross
# compiler; exit 77 if something is missing)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin=${1:-$root/build/llmwire}
steps=${2:-64}
models=${LLMWIRE_MODELS:-$root/../shared/models}
command -v qemu-system-riscv32 >/dev/null || { echo "SKIPPED: no qemu-system-riscv32"; exit 77; }
[ -f "$models/stories260K.bin" ] || { echo "SKIPPED: no stories260K.bin in \$LLMWIRE_MODELS"; exit 77; }
RV32_BUILD="${RV32_BUILD:-$root/build-rv32}" "$root/scripts/build_rv32.sh" >/dev/null
elf="${RV32_BUILD:-$root/build-rv32}/llmwire-rv32.elf"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf "%-6s %14s %12s %14s %12s %12s\n" quant "instr/token" "MACs/token" "instr/MAC" "internal B" "PSRAM B"
for q in q4 q8 f32; do
  "$bin" convert "$models/stories260K.bin" "$models/tok512.bin" -o "$work/$q.img" --quant "$q" >/dev/null 2>&1
  macs=$("$bin" inspect "$work/$q.img" | awk '
    $2 ~ /^(wq|wk|wv|wo|w1|w2|w3|classifier)$/ { m += $5 * $6 }
    $2 == "tok_embedding" { emb = $5 * $6 }
    /classifier: shared/ { shared = 1 }
    END { print m + (shared ? emb : 0) }')
  "$bin" sim --emulate --icount --firmware "$elf" --images "$work/$q.img" -p "Once upon a time" \
    -n "$steps" --temp 0 --quiet >"$work/out" 2>"$work/log" || { cat "$work/log"; exit 1; }
  instr=$(sed -n 's/.*instructions per generated token: median \([0-9]*\).*/\1/p' "$work/log" | head -1)
  mem=$(sed -n 's/.*internal \([0-9]*\) of [0-9]* B, PSRAM \([0-9]*\) of.*/\1 \2/p' "$work/log" | head -1)
  printf "%-6s %14s %12s %14s %12s %12s\n" "$q" "$instr" "$macs" \
    "$(awk -v a="$instr" -v b="$macs" 'BEGIN { printf "%.2f", a / b }')" $mem
done

make -s -f "$root/src/platform/rv32/rv32.mk" -C "$root" BUILD="${RV32_BUILD:-$root/build-rv32}" \
  "${RV32_BUILD:-$root/build-rv32}/kernel-bench.elf"
echo
echo "kernels alone (32 rows; 'per MAC' includes fp16 scales and the float accumulation):"
qemu-system-riscv32 -M virt -bios none -m 16M -display none -monitor none -serial none \
  -semihosting-config enable=on,target=native -icount shift=0 \
  -device loader,file="${RV32_BUILD:-$root/build-rv32}/kernel-bench.elf",cpu-num=0 2>&1 |
  sed 's/^kernel-bench /  /'
