#!/usr/bin/env bash
# The main job: tell a story with the best real weights found.
#   scripts/story.sh ["prompt"] [extra llmwire generate flags]
# Looks in $LLMWIRE_MODELS, then models/, for stories42M > stories15M > stories260K.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x build/llmwire ] || { echo "llmwire is not built yet: run scripts/setup.sh first" >&2; exit 1; }
prompt=${1:-}
shift || true

pick() {
  for dir in "${LLMWIRE_MODELS:-}" models; do
    [ -n "$dir" ] || continue
    for m in stories42M stories15M; do
      if [ -f "$dir/$m.bin" ] && [ -f "$dir/tokenizer.bin" ]; then echo "$dir/$m.bin $dir/tokenizer.bin $m"; return; fi
    done
    if [ -f "$dir/stories260K.bin" ] && [ -f "$dir/tok512.bin" ]; then
      echo "$dir/stories260K.bin $dir/tok512.bin stories260K"; return
    fi
  done
}
read -r ckpt tok name <<<"$(pick)" || true
if [ -z "${ckpt:-}" ]; then
  cat >&2 <<MSG
No model weights found (looked in \$LLMWIRE_MODELS=${LLMWIRE_MODELS:-<unset>} and models/).
Do one of:
  scripts/download_models.sh           # fetches stories15M + tokenizer (checksummed) into models/
  export LLMWIRE_MODELS=/path/to/dir   # a folder with stories15M.bin + tokenizer.bin
                                       # (or stories260K.bin + tok512.bin)
then run scripts/story.sh again.
MSG
  exit 1
fi
mkdir -p build/story-cache
img=build/story-cache/$name-q4.img
if [ ! -f "$img" ] || [ "$ckpt" -nt "$img" ]; then
  echo "== converting $ckpt (q4)" >&2
  build/llmwire convert "$ckpt" "$tok" -o "$img" --quant q4 >&2
fi
echo "== $name, q4, on this PC" >&2
exec build/llmwire generate "$img" -p "$prompt" --temp 0.8 --topp 0.9 --threads 2 "$@"
