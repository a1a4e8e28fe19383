#!/usr/bin/env bash
# The plan must agree with the emulated boards (issue 9): bench/plan_vs_emulated.sh runs
# stories260K rings on emulated rv32 boards (qemu -icount: compute = instructions) and puts the
# plan's per-stage instructions (`plan --board rv32-emulated`) beside them. Every stage must be
# within 10%, and in every ring the stage the plan ranks slowest must be (within the 1 ms the
# /stats figures are rounded to) the slowest measured. Re-measure the rv32 figures
# (tools/cost_model.cpp, from bench/rv32/op_bench.cpp) when a kernel change moves them.
# Usage: plan.sh LLMWIRE_BIN   (exit 77: skipped)
set -uo pipefail
bin=${1:?llmwire binary}
root="$(cd "$(dirname "$0")/../.." && pwd)"
models=${LLMWIRE_MODELS:-}
if [ -z "$models" ] && [ -f "$root/../shared/models/stories260K.bin" ]; then
  models="$root/../shared/models"
fi
[ -n "$models" ] || models="$root/models"
export LLMWIRE_MODELS="$models"
out=$("$root/bench/plan_vs_emulated.sh" "$bin" 24 2>&1)
rc=$?
echo "$out"
[ $rc -eq 77 ] && exit 77
[ $rc -eq 0 ] || { echo "FAIL: bench/plan_vs_emulated.sh exited $rc"; exit 1; }
echo "$out" | awk '
  $1 ~ /^q[48]$/ && NF == 9 {
    rows++
    ring = $1 " " $2
    if ($8 < 0.9 || $8 > 1.1) { print "FAIL: " ring " stage " $3 ": plan/emulated " $8; bad++ }
    if (!(ring in pmax) || $6 > pmax[ring]) { pmax[ring] = $6; at[ring] = $7 }
    if (!(ring in emax) || $7 > emax[ring]) emax[ring] = $7
  }
  END {
    for (r in pmax) {
      if (at[r] < emax[r] - 1e6) {
        print "FAIL: " r ": the plan'"'"'s slowest stage measured " at[r] ", the slowest " emax[r]
        bad++
      }
    }
    if (rows < 10) { print "FAIL: only " rows " stage rows"; bad++ }
    if (bad) exit 1
    print "plan and emulated boards agree: " rows " stages"
  }'
