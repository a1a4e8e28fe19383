// Boot-time kernel self-test: the platform's matmul kernel (host SIMD, ESP32-S3 PIE, rv32) must
// give the scalar reference's bits on this image's own weights. A board whose fast kernel
// disagrees falls back to the reference and says so, instead of telling a different story.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "engine/arena.h"
#include "engine/image.h"
#include "engine/kernels.h"

namespace llmwire {

struct SelfTestResult {
  bool ran = false;       // false: the image holds no matrix to test with
  bool identical = true;  // candidate == reference, bit for bit
  uint32_t rows = 0, cols = 0;
  uint32_t first_bad_row = 0;
};

// Scratch the self-test takes from the fast region for this image.
size_t selftest_bytes(const ImageInfo& info);

// Runs `candidate` and `reference` on up to kSelfTestRows rows of the image's first matrix
// with a fixed pseudo-random input, and compares the outputs bit for bit.
SelfTestResult kernel_selftest(const Image& image, MatmulFn candidate, MatmulFn reference,
                               Arena* scratch);

constexpr uint32_t kSelfTestRows = 16;

}  // namespace llmwire
