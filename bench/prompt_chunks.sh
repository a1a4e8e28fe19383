#!/usr/bin/env bash
# Issue 9 item 4, measured: the time to the first token's logits for a 32-token prompt
# (stories260K q4) on 2 and 3 simulated boards, position by position (--batch 1) and in chunks
# (--batch 7, --batch 32 = 31 positions a frame), the runs alternating, each story checked
# against `generate`. The host sim throttles every wire to the baud rate; its compute is the
# host's, so this measures what the link and the pipeline fill cost (the compute a chunk saves
# shows on emulated or real boards, and in `plan`).
#   bench/prompt_chunks.sh [build/llmwire] [ROUNDS] [BAUD]
# Needs $LLMWIRE_MODELS with stories260K.bin and tok512.bin.
set -euo pipefail
BIN=${1:-build/llmwire}
ROUNDS=${2:-3}
BAUD=${3:-460800}
M=${LLMWIRE_MODELS:?set LLMWIRE_MODELS to a folder with stories260K.bin and tok512.bin}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$BIN" convert "$M/stories260K.bin" "$M/tok512.bin" --quant q4 -o "$dir/s.img" >/dev/null 2>&1
# 32 positions with BOS.
prompt="Once upon a time, there was a little girl named Lily. She loved to play outside in the park with"
common=(-p "$prompt" -n 16 --temp 0)
want=$("$BIN" generate "$dir/s.img" "${common[@]}" 2>/dev/null | python3 -c 'import sys; print(sys.stdin.read().rstrip())')
for n in 2 3; do
  mkdir -p "$dir/b$n"
  cp "$dir/s.img" "$dir/b$n/s.img"
  "$BIN" split "$dir/b$n/s.img" --boards "$n" >/dev/null
done

echo "boards batch round prompt_ms chunks story"
for ((r = 1; r <= ROUNDS; r++)); do
  for n in 2 3; do
    imgs=()
    for ((k = 0; k < n; k++)); do imgs+=("$dir/b$n/s.stage$k.img"); done
    for b in 1 7 32; do
      out=$("$BIN" sim --images "${imgs[@]}" "${common[@]}" --baud "$BAUD" --batch "$b" 2>&1)
      story=$(echo "$out" | sed '/^--- simulated ring/,$d' | python3 -c 'import sys; print(sys.stdin.read().rstrip())')
      same=DIFFERENT
      [[ "$story" == "$want" ]] && same=same-story
      line=$(echo "$out" | grep '^prompt:')
      ms=$(echo "$line" | sed -E 's/.* in ([0-9.]+) ms.*/\1/')
      chunks=$(echo "$line" | sed -E 's/.*logits, ([0-9]+) chunk.*/\1/')
      echo "$n $b $r $ms $chunks $same"
    done
  done
done
