#!/usr/bin/env bash
# Emulated MCU boards in CI: rings of bare-metal rv32 boards under qemu (llmwire sim --emulate)
# must tell the same story as `llmwire generate` on the unsplit image, token for token (an
# independent path on x86-64), with and without line noise and a worker reboot; a head with a
# corrupt image, a ring with another model's worker and a ring with a missing worker must say
# so on the head's console and still answer /help.
# Usage: ring.sh LLMWIRE_BIN [quick|faults|boot|all]   (exit 77: skipped)
set -uo pipefail
bin=${1:?llmwire binary}
what=${2:-all}
root="$(cd "$(dirname "$0")/../.." && pwd)"
models=${LLMWIRE_MODELS:-}
if [ -z "$models" ] && [ -f "$root/../shared/models/stories260K.bin" ]; then
  models="$root/../shared/models"
fi
skip() { echo "SKIPPED: $*"; exit 77; }
command -v qemu-system-riscv32 >/dev/null || skip "qemu-system-riscv32 missing (scripts/setup.sh)"
command -v riscv64-unknown-elf-g++ >/dev/null || skip "riscv64-unknown-elf-g++ missing (scripts/setup.sh)"
[ -f "$models/stories260K.bin" ] && [ -f "$models/tok512.bin" ] ||
  skip "set LLMWIRE_MODELS to a folder with stories260K.bin and tok512.bin"
RV32_BUILD="${RV32_BUILD:-$(dirname "$bin")/../build-rv32}" "$root/scripts/build_rv32.sh" >/dev/null ||
  { echo "FAIL: firmware build"; exit 1; }
elf="${RV32_BUILD:-$(dirname "$bin")/../build-rv32}/llmwire-rv32.elf"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
prompt="Once upon a time"
# 32 tokens with BOS: the prompt chunks (ACTIVATION_BATCH) of 7 and 31 positions.
long="Once upon a time, there was a little girl named Lily. She loved to play outside in the park with"
steps=24

images() {  # q (q4, q8, or q4-i8: int8 KV) -> $work/q.img, its 2- and 3-board splits (2c, 3c: the classifier split evenly too)
  local q=$1 n
  [ -f "$work/$q.img" ] && return
  local kv=f32
  [[ "$q" == *-i8 ]] && kv=i8
  "$bin" convert "$models/stories260K.bin" "$models/tok512.bin" -o "$work/$q.img" --quant "${q%-i8}" \
    --kv "$kv" >/dev/null 2>&1
  for n in 2 3; do
    mkdir -p "$work/$q-$n" "$work/$q-${n}c"
    cp "$work/$q.img" "$work/$q-$n/m.img" && cp "$work/$q.img" "$work/$q-${n}c/m.img"
    "$bin" split "$work/$q-$n/m.img" --boards $n >/dev/null
    "$bin" split "$work/$q-${n}c/m.img" --boards $n --classifier-slices even >/dev/null
  done
}
stages() { ls "$work/$1-$2"/m.stage*.img | sort; }

emulate() {  # out-file, then sim arguments
  local out=$1
  shift
  timeout 240 "$bin" sim --emulate --firmware "$elf" "$@" >"$out" 2>"$out.log"
}

# The story must equal generate's on the unsplit image, token for token.
story() {  # q boards temp seed [extra sim args...]
  local q=$1 n=$2 temp=$3 seed=$4
  shift 4
  images "$q"
  local ref got t0=$SECONDS
  ref=$("$bin" generate "$work/$q.img" -p "$prompt" -n $steps --temp "$temp" --seed "$seed" 2>/dev/null)
  # shellcheck disable=SC2046
  emulate "$work/out" --images $(stages "$q" "$n") -p "$prompt" -n $steps --temp "$temp" \
    --seed "$seed" "$@"
  local rc=$?
  got=$(cat "$work/out")
  local name="$q, $n boards, temp $temp seed $seed${*:+ ($*)}"
  if [ ${#ref} -le ${#prompt} ]; then
    fail "$name: generate told no story"
  elif [ $rc -ne 0 ] || [[ "$got" != *"$ref"* ]] || [[ "$got" != *"[$steps tokens,"* ]]; then
    fail "$name: rc $rc; expected the story"
    echo "$ref" | sed 's/^/  expected: /'
    sed 's/^/  got: /' "$work/out"
    tail -5 "$work/out.log" | sed 's/^/  log: /'
  else
    echo "ok: $name: same story as generate ($((SECONDS - t0)) s)"
    grep -h "reboots\|dropped, [1-9]\|flipped in [1-9]" "$work/out" | sed 's/^/    /'
  fi
}

# The head's console must say `expect` and still answer /help.
console() {  # name expect sim-args...
  local name=$1 expect=$2
  shift 2
  emulate "$work/out" "$@" --then /help
  if ! grep -q -- "$expect" "$work/out" || ! grep -q "/help      this text" "$work/out"; then
    fail "$name: expected '$expect' on the head's console and /help answered"
    sed 's/^/  got: /' "$work/out"
    tail -5 "$work/out.log" | sed 's/^/  log: /'
  else
    echo "ok: $name: $(grep -m1 -- "$expect" "$work/out" | cut -c1-150)"
  fi
}

if [ "$what" = quick ] || [ "$what" = all ]; then
  story q4 2 0 1
  story q4 3 0.8 7
  story q8 2 0.8 3
  story q8 3 0 1
  story q4-i8 2 0.8 7
  story q4 3c 0 1
  story q8 2c 0.8 3
  story q4 3c 1.0 5 --ber 5e-5 --drop 0.01  # the split sampler on rv32 boards, faulty wires
  prompt="$long" story q4 2 0 1 --batch 32
  prompt="$long" story q8 3 0.8 7 --batch 7
fi
if [ "$what" = all ]; then
  story q4 3 0 1
  story q8 2 0 1
  story q4 2 0.8 11
  story q8 3 0.8 5
fi
if [ "$what" = faults ] || [ "$what" = all ]; then
  story q4 3 0.8 5 --ber 5e-5 --drop 0.01 --reboot 1@8
  story q8 2 0 1 --ber 1e-4 --reboot 1@12
  # The rebuild after a reboot replays the prompt in chunks too.
  prompt="$long" story q4 3 0.8 5 --batch 7 --ber 2e-5 --reboot 2@6
fi
if [ "$what" = boot ] || [ "$what" = all ]; then
  images q4
  images q8
  # A corrupt head image: one payload byte flipped.
  cp "$work/q4-2/m.stage0.img" "$work/corrupt.img"
  printf '\xAA' | dd of="$work/corrupt.img" bs=1 seek=5000 conv=notrunc status=none
  console "corrupt head image" "boot failed: model image" \
    --images "$work/corrupt.img" "$work/q4-2/m.stage1.img" -p "$prompt" -n 8
  # Another model's worker in the ring (q8 weights have another model id).
  console "another model's worker" "holds a different model" \
    --images "$work/q4-2/m.stage0.img" "$work/q8-2/m.stage1.img" -p "$prompt" -n 8
  # The worker never powers on.
  console "missing worker" "no answer from the ring" --absent 1 \
    --images "$work/q4-2/m.stage0.img" "$work/q4-2/m.stage1.img" -p "$prompt" -n 8
fi
if ((fails)); then
  echo "emulated ring: $fails failed"
  exit 1
fi
echo "emulated ring: all passed"
