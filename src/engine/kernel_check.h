// The boot-time check a platform kernel must pass before it replaces the portable one (the
// ESP32-S3 PIE kernel, firmware/esp32s3/components/llmwire/pie/): fixed data, a bit-for-bit
// comparison with the reference, and the decision. Portable, so the whole logic is tested on
// the host with the scalar kernels standing in (tests/test_kernel_check.cpp); the board runs
// the same code on its own kernel. The stage's self-test on the image's weights
// (runtime/selftest.h) comes on top of this one.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "engine/kernels.h"

namespace llmwire {

struct KernelCheckResult {
  bool identical = false;    // every case matched the reference bit for bit
  uint32_t cases = 0;        // cases run
  uint32_t failed_case = 0;  // the first case that differed (when !identical)
};

// Scratch the check needs (matrix, activations, two outputs), 16-byte aligned inside.
constexpr size_t kKernelCheckScratchBytes = 6144;

// Runs `candidate` and matmul_reference on fixed Q4 and Q8 cases: groups of 32 (the fast
// path) and 8 (handed on), a partial last group, row counts and row ranges off any
// interleave, batches of 1 and 3, extreme nibbles and bytes, zero and subnormal scales,
// activations at +-127. `scratch` holds kKernelCheckScratchBytes (any alignment).
KernelCheckResult check_kernel(MatmulFn candidate, uint8_t* scratch, size_t scratch_len);

// The decision: `candidate` if it passed, else `fallback` (never a kernel that differed).
const Kernel* kernel_after_check(const Kernel* candidate, const Kernel* fallback,
                                 const KernelCheckResult& result);

}  // namespace llmwire
