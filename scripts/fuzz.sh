#!/usr/bin/env bash
# Builds the libFuzzer targets with clang and runs each for a bounded time (default 60 s),
# seeded with small valid inputs made by the release build.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
cmake --preset fuzz >/dev/null
targets=$(for f in fuzz/fuzz_*.cpp; do basename "$f" .cpp; done)
cmake --build --preset fuzz --target $targets
[ -x build/llmwire ] || { cmake --preset default >/dev/null && cmake --build --preset default; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Seed corpus: a tiny valid image of each weight type.
mkdir -p "$work/corpus_image"
build/llmwire synth --dim 16 --hidden 24 --layers 1 --heads 2 --kv-heads 1 --vocab 300 --seq 8 \
  --seed 1 -o "$work/tiny.ckpt" --tokenizer-out "$work/tiny.tok" >/dev/null
for q in f32 q8 q4; do
  build/llmwire convert "$work/tiny.ckpt" "$work/tiny.tok" -o "$work/corpus_image/tiny_$q.img" \
    --quant "$q" --group 8 >/dev/null 2>&1
done
for target in build-fuzz/fuzz/fuzz_*; do
  name=$(basename "$target")
  corpus="$work/corpus_${name#fuzz_}"
  mkdir -p "$corpus"
  echo "== $name for ${secs}s"
  "$target" -max_total_time="$secs" -max_len=65536 -rss_limit_mb=2048 -print_final_stats=1 \
    "$corpus" 2>&1 | tail -n 12
done
