#!/usr/bin/env bash
# Issue 7's link targets, measured: stories260K at 460800 baud on 2 and 6 simulated boards,
# each faulty run beside a fault-free one, with the story checked against `generate`.
#   bench/sim_faults.sh [build/llmwire] [-n TOKENS]
# Needs $LLMWIRE_MODELS with stories260K.bin and tok512.bin. Wall times on a busy machine are
# noisy: compare the ratios of runs made together, and repeat.
set -euo pipefail
BIN=${1:-build/llmwire}
N=${2:-200}
M=${LLMWIRE_MODELS:?set LLMWIRE_MODELS to a folder with stories260K.bin and tok512.bin}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$BIN" convert "$M/stories260K.bin" "$M/tok512.bin" --quant q4 -o "$dir/s.img" >/dev/null
common=(-p "Once upon a time" -n "$N" --seed 7 --temp 0.9)
want=$("$BIN" generate "$dir/s.img" "${common[@]}" 2>/dev/null | python3 -c 'import sys; print(sys.stdin.read().rstrip())')

run() {  # boards, flags...: prints "seconds ok|DIFFERENT totals"
  local n=$1; shift
  local imgs=()
  for ((k = 0; k < n; k++)); do imgs+=("$dir/b$n/s.stage$k.img"); done
  local t0 t1 out story
  t0=$(date +%s.%N)
  out=$("$BIN" sim --images "${imgs[@]}" "${common[@]}" "$@" 2>&1)
  t1=$(date +%s.%N)
  story=$(echo "$out" | sed '/^--- simulated ring/,$d' | python3 -c 'import sys; print(sys.stdin.read().rstrip())')
  local same=DIFFERENT
  [[ "$story" == "$want" ]] && same=same-story
  echo "$(echo "$t1 - $t0" | bc) $same $(echo "$out" | grep '^totals' | cut -d' ' -f2-)"
}

for n in 2 6; do
  mkdir -p "$dir/b$n"
  "$BIN" split "$dir/s.img" --boards "$n" -o "$dir/b$n" >/dev/null
  base=$(run "$n")
  tb=${base%% *}
  echo "$n boards, fault-free: ${tb} s ${base#* }"
  for f in "--ber 1e-4" "--drop 0.1" "--ber 1e-3"; do
    r=$(run "$n" $f)
    t=${r%% *}
    echo "$n boards, $f: ${t} s = $(echo "scale=2; $t / $tb" | bc)x ${r#* }"
  done
done
r=$(run 6 --ber 3e-4 --drop 0.1 --dup 0.2 --reboot 2@50 --reboot 4@120)
echo "6 boards, BER 3e-4 + 10% drop + 20% dup + two reboots: ${r%% *} s ${r#* }"
