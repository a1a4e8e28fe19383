#!/usr/bin/env bash
# Runs the test suite: unit + reference tests, then the same tests under ASan+UBSan, then a
# bounded libFuzzer run of every parser. --quick runs only the first part.
# Real weights are used when LLMWIRE_MODELS names a folder holding stories260K.bin,
# tok512.bin and tokenizer.bin (tests that need them skip and say so otherwise).
set -euo pipefail
cd "$(dirname "$0")/.."
quick=0
[ "${1:-}" = "--quick" ] && quick=1
jobs=$(nproc)

if [ -z "${LLMWIRE_MODELS:-}" ]; then
  for d in models ../shared/models; do
    if [ -f "$d/stories260K.bin" ]; then export LLMWIRE_MODELS="$(cd "$d" && pwd)"; break; fi
  done
fi
echo "== LLMWIRE_MODELS=${LLMWIRE_MODELS:-<unset: real-weight tests will skip>}"

echo "== tests (release build)"
cmake --preset default >/dev/null
cmake --build --preset default
ctest --preset default -j "$jobs"

((quick)) && exit 0

echo "== tests under AddressSanitizer + UndefinedBehaviorSanitizer"
cmake --preset asan >/dev/null
cmake --build --preset asan
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --preset asan -j "$jobs" -E '^py\.|^RealCalib\.|^CalibFit\.'
# Left out under the sanitizers: the NumPy tests drive the release binary, RealCalib runs
# the calibrated converter on real weights for minutes and CalibFit a wide vocabulary (the
# Calibration suite covers their code).

echo "== fuzzing (bounded)"
scripts/fuzz.sh "${FUZZ_SECONDS:-60}"
