#!/usr/bin/env bash
# The plan's per-stage compute against the emulated ring's, side by side: stories260K split by
# the planner over 2 and 3 boards, q4 and q8; each ring runs on emulated rv32 boards under
# qemu -icount shift=0 (`sim --emulate --icount`, greedy story, then /stats), where a board's
# compute time is its instruction count (1 per virtual ns). The plan is `plan --board
# rv32-emulated` for the same layers at the run's mean position; a stage's prediction is
# positions x its prompt-token cycles + generated tokens x its classifier cycles (the /stats
# compute excludes sampling). The last column is the ESP32-S3 estimate for the same stage and
# position (scalar kernels, placement), for the shape only. Then the per-operation counts the
# rv32 figures come from (bench/rv32/op_bench.cpp).
# "3+even": the classifier split evenly over the 3 boards (`split --classifier-slices even`;
# greedy, so the slices merge by arg max and every worker computes its rows).
# Usage: bench/plan_vs_emulated.sh [LLMWIRE_BIN] [tokens]   (needs LLMWIRE_MODELS, qemu and
# the rv32 cross compiler; exit 77 if something is missing)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin=${1:-$root/build/llmwire}
steps=${2:-64}
models=${LLMWIRE_MODELS:-$root/../shared/models}
command -v qemu-system-riscv32 >/dev/null || { echo "SKIPPED: no qemu-system-riscv32"; exit 77; }
[ -f "$models/stories260K.bin" ] || { echo "SKIPPED: no stories260K.bin in \$LLMWIRE_MODELS"; exit 77; }
build="${RV32_BUILD:-$root/build-rv32}"
RV32_BUILD="$build" "$root/scripts/build_rv32.sh" >/dev/null
make -s -f "$root/src/platform/rv32/rv32.mk" -C "$root" BUILD="$build" "$build/op-bench.elf"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# "N per generated token (sampling S), P per prompt token" of each stage, from plan's output.
stage_cycles() {
  sed -n 's/.*cycles: \([0-9]*\) per generated token (sampling \([0-9]*\)), \([0-9]*\) per prompt.*/\1 \2 \3/p'
}

printf "%-4s %-8s %-6s %-7s %6s %14s %14s %8s %12s\n" quant boards stage layers positions \
  "plan instr" "emulated instr" "plan/emu" "S3 est. ms"
for q in q4 q8; do
  "$bin" convert "$models/stories260K.bin" "$models/tok512.bin" -o "$work/$q.img" --quant "$q" >/dev/null 2>&1
  for cfg in 2:none 3:none 3:even; do
    n=${cfg%%:*} cls=${cfg#*:}
    dir="$work/$q-$n-$cls"
    mkdir -p "$dir"
    "$bin" split "$work/$q.img" --boards "$n" --classifier-slices "$cls" -o "$dir" >"$dir/split.txt"
    # Layer ranges by stage (0 = head), then in layer order for --layers (head last).
    mapfile -t ranges < <(awk '$1 ~ /^[0-9]+\*?$/ && $2 ~ /^([0-9]+-[0-9]+|none)$/ { print $2 }' "$dir/split.txt")
    layers=""
    for ((k = 1; k < n; k++)); do layers+="${ranges[$k]},"; done
    layers+="${ranges[0]/none/-}"
    images=()
    for ((k = 0; k < n; k++)); do images+=("$dir/$q.stage$k.img"); done
    "$bin" sim --emulate --icount --firmware "$build/llmwire-rv32.elf" --images "${images[@]}" \
      -p "Once upon a time" -n "$steps" --temp 0 --quiet --then /stats >"$dir/sim.txt" 2>&1 ||
      { cat "$dir/sim.txt"; exit 1; }
    # Positions every stage computed (prompt + generated - 1: the last token is not fed back)
    # and the generated tokens (one classifier each).
    read -r prompt gen < <(sed -n 's/.*last story \([0-9]*\)+\([0-9]*\) tokens.*/\1 \2/p' "$dir/sim.txt" | tail -1)
    positions=$((prompt + gen - 1))
    mean=$(((positions - 1) / 2))
    slices=()
    [ "$cls" = none ] || slices=(--classifier-slices "$cls")
    "$bin" plan "$work/$q.img" --board rv32-emulated --layers "$layers" --pos "$mean" --greedy \
      "${slices[@]}" >"$dir/plan.txt" || true
    "$bin" plan "$work/$q.img" --layers "$layers" --pos "$mean" --greedy "${slices[@]}" \
      >"$dir/s3.txt" || true
    mapfile -t cyc < <(stage_cycles <"$dir/plan.txt")
    mapfile -t s3 < <(awk '$1 ~ /^[0-9]+\*?$/ && $NF ~ /^(compute|memory)$/ { print $6 }' "$dir/s3.txt")
    for ((k = 0; k < n; k++)); do
      if ((k == 0)); then
        ms=$(sed -n 's/^head: compute \([0-9]*\) ms.*/\1/p' "$dir/sim.txt" | tail -1)
      else
        ms=$(sed -n "s/^stage $k: compute \\([0-9]*\\) ms.*/\\1/p" "$dir/sim.txt" | tail -1)
      fi
      read -r g s p <<<"${cyc[$k]}"
      awk -v q="$q" -v n="$n$([ "$cls" = none ] || echo "+$cls")" -v k="$k" -v l="${ranges[$k]}" -v pos="$positions" -v gen="$gen" \
        -v g="$g" -v s="$s" -v p="$p" -v ms="$ms" -v s3="${s3[$k]}" 'BEGIN {
          plan = pos * p + gen * (g - s - p); emu = ms * 1e6;
          printf "%-4s %-8s %-6s %-7s %6d %14.0f %14.0f %8.2f %12s\n", q, n, k (k ? "" : "*"), l,
            pos, plan, emu, plan / emu, s3 }'
    done
  done
done
echo "(emulated instr: /stats compute in ms x 1e6, so +-1 ms; * the head: embedding, layers, classifier)"
echo
echo "per-operation instructions on the emulated rv32 (bench/rv32/op_bench.cpp):"
qemu-system-riscv32 -M virt -bios none -m 16M -display none -monitor none -serial none \
  -semihosting-config enable=on,target=native -icount shift=0 \
  -device loader,file="$build/op-bench.elf",cpu-num=0 2>&1 | sed 's/^op-bench /  /'
