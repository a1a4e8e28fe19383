#!/usr/bin/env bash
# Side by side with llama.cpp on the same synthetic checkpoints, alternating rounds (a shared
# machine slows both alike), one thread: generation and prompt tok/s, each by the wall clock
# and per CPU second (on a loaded machine the CPU-second figures are the comparable ones),
# and their ratios. Prompt: llmwire 32 tokens batched vs llama.cpp pp64. llama.cpp is built elsewhere, never in this repo:
#   LLAMA_BIN=/path/to/llama.cpp/build/bin bench/compare_llama_cpp.sh [rounds]
# It converts build/bench-cache/<shape>-synth.bin (written by llmwire_bench) with
# llama-convert-llama2c-to-ggml and llama-quantize --pure (every tensor Q4_0 / Q8_0, like
# llmwire's images) into $LLAMA_MODELS (default /tmp/llmwire-llama-models).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
: "${LLAMA_BIN:?set LLAMA_BIN to the llama.cpp build/bin directory}"
models=${LLAMA_MODELS:-/tmp/llmwire-llama-models}
tok=${LLMWIRE_MODELS:-models}/tokenizer.bin
cache=build/bench-cache
mkdir -p "$models"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

for shape in stories15M stories42M; do
  [ -f "$cache/$shape-synth.bin" ] || { echo "run build/bench/llmwire_bench --kernels first" >&2; exit 2; }
  [ -f "$models/$shape-f32.gguf" ] || "$LLAMA_BIN/llama-convert-llama2c-to-ggml" \
      --copy-vocab-from-model "$tok" --llama2c-model "$cache/$shape-synth.bin" \
      --llama2c-output-model "$models/$shape-f32.gguf" >/dev/null 2>&1
  for q in Q4_0 Q8_0; do
    [ -f "$models/$shape-$q.gguf" ] || "$LLAMA_BIN/llama-quantize" --pure \
        "$models/$shape-f32.gguf" "$models/$shape-$q.gguf" "$q" >/dev/null 2>&1
  done
done

cpu_of() { awk '{print $1 + $2}' "$1"; }  # user + sys seconds from /usr/bin/time -f '%U %S'
for r in $(seq 1 "$rounds"); do
  for shape in stories15M stories42M; do
    for q in q4 q8; do
      Q=$([ $q = q4 ] && echo Q4_0 || echo Q8_0)
      build/bench/llmwire_bench --kernels --rounds 1 --tokens 48 --quants $q --shapes $shape \
          --only "${LLMWIRE_KERNEL:-avx512vnni}" --json "$out/lw.json" >/dev/null 2>&1
      python3 - "$out/lw.json" >>"$out/llmwire.$shape.$q" <<'PY'
import json, sys
for row in json.load(open(sys.argv[1])):
    if row["threads"] == 1:
        print(row["tok_s"], row["tok_per_cpu_s"], row["prompt_tok_s"], row["prompt_tok_per_cpu_s"])
PY
      # llama.cpp: tg48 and pp64 (wall, its own timing), then tg48 x3 under time for CPU seconds.
      "$LLAMA_BIN/llama-bench" -m "$models/$shape-$Q.gguf" -t 1 -p 64 -n 48 -r 1 -o json \
          >"$out/lc.json" 2>/dev/null
      /usr/bin/time -o "$out/t1" -f '%U %S' "$LLAMA_BIN/llama-bench" -m "$models/$shape-$Q.gguf" \
          -t 1 -p 0 -n 48 -r 3 -o json >/dev/null 2>&1
      /usr/bin/time -o "$out/t0" -f '%U %S' "$LLAMA_BIN/llama-bench" -m "$models/$shape-$Q.gguf" \
          -t 1 -p 0 -n 1 -r 1 -o json >/dev/null 2>&1
      # pp64 CPU seconds: 10 repetitions minus 1 (load and warmup cancel) = 9 x 64 tokens.
      /usr/bin/time -o "$out/p10" -f '%U %S' "$LLAMA_BIN/llama-bench" -m "$models/$shape-$Q.gguf" \
          -t 1 -p 64 -n 0 -r 10 -o json >/dev/null 2>&1
      /usr/bin/time -o "$out/p1" -f '%U %S' "$LLAMA_BIN/llama-bench" -m "$models/$shape-$Q.gguf" \
          -t 1 -p 64 -n 0 -r 1 -o json >/dev/null 2>&1
      python3 - "$out/lc.json" "$(cpu_of "$out/t1")" "$(cpu_of "$out/t0")" \
          "$(cpu_of "$out/p10")" "$(cpu_of "$out/p1")" >>"$out/llama.$shape.$q" <<'PY'
import json, sys
rows = json.load(open(sys.argv[1]))
tg = [r["avg_ts"] for r in rows if r["n_gen"] > 0][0]
pp = [r["avg_ts"] for r in rows if r["n_prompt"] > 0][0]
cpu = max(float(sys.argv[2]) - float(sys.argv[3]), 1e-6)  # minus load + warmup
pcpu = max(float(sys.argv[4]) - float(sys.argv[5]), 1e-6)
print(tg, (3 * 48 - 1) / cpu, pp, 9 * 64 / pcpu)
PY
    done
  done
done

python3 - "$out" <<'PY'
import statistics, sys, os
d = sys.argv[1]
print("one thread, medians over rounds; llama.cpp: llama-bench tg48 / pp64, --pure quantization")
print(f"{'model':14} {'':6} {'tok/s':>9} {'tok/CPU s':>10} {'prompt tok/s':>13} {'prompt/CPU s':>13}")
for shape in ["stories15M", "stories42M"]:
    for q in ["q4", "q8"]:
        rows = {}
        for who in ["llmwire", "llama"]:
            vals = [list(map(float, l.split())) for l in open(os.path.join(d, f"{who}.{shape}.{q}"))]
            rows[who] = [statistics.median(c) for c in zip(*vals)]
        for who in ["llmwire", "llama"]:
            g, c, p, pc = rows[who]
            print(f"{shape + ' ' + q:14} {who:6.6} {g:9.1f} {c:10.1f} {p:13.1f} {pc:13.1f}")
        g = [a / b for a, b in zip(rows["llmwire"], rows["llama"])]
        print(f"{'':14} {'ratio':6} {g[0]:8.2f}x {g[1]:9.2f}x {g[2]:12.2f}x {g[3]:12.2f}x")
PY

