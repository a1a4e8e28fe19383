#!/usr/bin/env bash
# Downloads the official TinyStories checkpoints and tokenizers into models/ (or $1) and
# verifies each against its published SHA-256. Needs curl and the internet.
#   scripts/download_models.sh            # stories15M + tokenizer.bin + stories260K + tok512.bin
#   scripts/download_models.sh models 42M # also stories42M (167 MB)
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${1:-models}
extra=${2:-}
mkdir -p "$dest"
HF=https://huggingface.co/karpathy/tinyllamas/resolve/main
GH=https://raw.githubusercontent.com/karpathy/llama2.c/master
files=(
  "stories260K.bin $HF/stories260K/stories260K.bin b0a507e7ad0f626624f17112325e66691f9076d622e1d3274d103d00299f2696"
  "tok512.bin $HF/stories260K/tok512.bin 037cb335abb25d1fa9e8ecae30ed2a3a8ace9302862ebcdc05d51a6bbb10c312"
  "tokenizer.bin $GH/tokenizer.bin 50a52ef822ee9e83de5ce9d0be0a025a773d019437f58b5ff9dcafb063ece361"
  "stories15M.bin $HF/stories15M.bin cd590644d963867a2b6e5a1107f51fad663c41d79c149fbecbbb1f95fa81f49a"
)
case "$extra" in
  *42M*) files+=("stories42M.bin $HF/stories42M.bin 9f65a1000e17d0bc167dd6332e0ce5119a0222a3d920cead5bce413bfab2ee7b") ;;
esac
case "$extra" in
  *110M*) files+=("stories110M.bin $HF/stories110M.bin 515267168726a1ed1317a64a408492e6af3b67c1f71c5bd98c01d9d721803a24") ;;
esac
for entry in "${files[@]}"; do
  read -r name url sum <<<"$entry"
  out="$dest/$name"
  if [ -f "$out" ] && echo "$sum  $out" | sha256sum -c --status; then
    echo "ok       $out (checksum verified)"
    continue
  fi
  echo "download $url"
  curl -fL --retry 3 -o "$out.part" "$url"
  if ! echo "$sum  $out.part" | sha256sum -c --status; then
    echo "error: $name does not match its published SHA-256 ($sum); deleted." >&2
    rm -f "$out.part"
    exit 1
  fi
  mv "$out.part" "$out"
  echo "ok       $out (checksum verified)"
done
echo "Models are in $dest. Tests and 'scripts/story.sh' find them there (or set LLMWIRE_MODELS)."
