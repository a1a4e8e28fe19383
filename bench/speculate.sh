#!/usr/bin/env bash
# Prompt-lookup speculative decoding on stories260K (real weights, greedy): for each story of
# an evaluation text, its first WORDS words are the prompt; `llmwire generate` tells the greedy
# story with and without --speculate N, checks the two are the same text, and sums the weight
# passes (forward or verification passes) per generated token, the draft acceptance rate and
# the generation time of both runs (taken side by side, alternating; wall clock, so noisy).
# Usage: bench/speculate.sh EVAL_TEXT [N=8] [WORDS=12] [STEPS=256] [LLMWIRE_BIN] [quant=q4]
#   e.g. bench/speculate.sh ../shared/eval/stories260K_samples.txt
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
eval_text=${1:?usage: bench/speculate.sh EVAL_TEXT [N] [WORDS] [STEPS] [LLMWIRE_BIN] [quant]}
n=${2:-8}
words=${3:-12}
steps=${4:-256}
bin=${5:-$root/build/llmwire}
quant=${6:-q4}
models=${LLMWIRE_MODELS:-$root/models}
[ -f "$eval_text" ] || { echo "no evaluation text at $eval_text"; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$bin" convert "$models/stories260K.bin" "$models/tok512.bin" -o "$work/m.img" --quant "$quant" \
  >/dev/null 2>&1
# One prompt per story (stories are separated by blank lines).
awk -v w="$words" 'BEGIN { RS = "" } {
  gsub(/\n/, " "); s = ""; for (i = 1; i <= w && i <= NF; i++) s = s (i > 1 ? " " : "") $i
  print s }' "$eval_text" >"$work/prompts"
printf "%-4s %7s %7s %8s %8s %7s %s\n" "#" tokens passes "pass/tok" accept same prompt
i=0 tok_sum=0 pass_sum=0 drafted_sum=0 accepted_sum=0 t_plain=0 t_spec=0 differ=0
while IFS= read -r prompt; do
  i=$((i + 1))
  "$bin" generate "$work/m.img" -p "$prompt" -n "$steps" --temp 0 --seed 1 >"$work/plain" 2>"$work/plain.err"
  "$bin" generate "$work/m.img" -p "$prompt" -n "$steps" --temp 0 --seed 1 --speculate "$n" \
    >"$work/spec" 2>"$work/spec.err"
  same=yes
  cmp -s "$work/plain" "$work/spec" || { same=NO; differ=$((differ + 1)); }
  read -r gen passes drafted accepted < <(awk '
    /generated:/ { for (k = 1; k <= NF; k++) if ($k == "generated:") g = $(k + 1) }
    /^speculation:/ { d = $3; sub(",", "", d); a = $5; p = $(NF - 1); sub(/\(/, "", p) }
    END { print g, p, d, a }' "$work/spec.err")
  tp=$(sed -n 's/.*generated: [0-9]* tokens in \([0-9.]*\) s.*/\1/p' "$work/plain.err")
  ts=$(sed -n 's/.*generated: [0-9]* tokens in \([0-9.]*\) s.*/\1/p' "$work/spec.err")
  t_plain=$(awk -v a="$t_plain" -v b="$tp" 'BEGIN { print a + b }')
  t_spec=$(awk -v a="$t_spec" -v b="$ts" 'BEGIN { print a + b }')
  tok_sum=$((tok_sum + gen)) pass_sum=$((pass_sum + passes))
  drafted_sum=$((drafted_sum + drafted)) accepted_sum=$((accepted_sum + accepted))
  printf "%-4s %7s %7s %8s %7s%% %4s  %s\n" "$i" "$gen" "$passes" \
    "$(awk -v p="$passes" -v g="$gen" 'BEGIN { printf "%.3f", g ? p / g : 0 }')" \
    "$(awk -v a="$accepted" -v d="$drafted" 'BEGIN { printf "%.1f", d ? 100 * a / d : 0 }')" \
    "$same" "${prompt:0:60}"
done <"$work/prompts"
echo "---"
echo "stories260K $quant, greedy, --speculate $n, $i prompts of $words words, up to $steps tokens"
awk -v p="$pass_sum" -v g="$tok_sum" -v d="$drafted_sum" -v a="$accepted_sum" \
  -v tp="$t_plain" -v ts="$t_spec" -v x="$differ" 'BEGIN {
  printf "generated tokens %d, weight passes %d: %.3f passes per generated token\n", g, p, p / g
  printf "drafted %d, accepted %d (%.1f%%)\n", d, a, d ? 100 * a / d : 0
  printf "generation time: plain %.3f s, speculative %.3f s (plain / speculative %.2fx)\n", tp, ts, (ts > 0 ? tp / ts : 0)
  printf "stories that differ from plain decoding: %d\n", x }'
[ "$differ" -eq 0 ]
