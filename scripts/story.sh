#!/usr/bin/env bash
# The main job: a story told by a model split across simulated ESP32-S3 boards (one process
# per board, wires at 460800 baud), using the best real weights found:
# $LLMWIRE_MODELS, then models/ (stories42M > stories15M > stories260K).
#   scripts/story.sh ["prompt"] [more `llmwire demo` flags, e.g. --boards 3 --ber 1e-4]
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x build/llmwire ] || { echo "llmwire is not built yet: run scripts/setup.sh first" >&2; exit 1; }
prompt=${1:-Once upon a time}
shift || true
exec build/llmwire demo --boards 2 -p "$prompt" --temp 0.8 --topp 0.9 --seed 42 "$@"
