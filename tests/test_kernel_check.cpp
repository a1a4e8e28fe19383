// The boot-time kernel check (engine/kernel_check.h) on the host, with the portable kernels
// standing in for the ESP32-S3 PIE kernel: every real kernel passes and is kept; kernels that
// are wrong in the ways a SIMD port goes wrong fail and the decision falls back.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "engine/kernel_check.h"
#include "engine/kernels.h"

using namespace llmwire;

namespace {

std::vector<uint8_t> scratch() {
  return std::vector<uint8_t>(kKernelCheckScratchBytes + 3);
}

// Stand-ins for a broken PIE port, each wrong in one way.
void wrong_last_bit(const TensorView& w, uint32_t g, const MatmulInput& in, float* out,
                    uint32_t stride, uint32_t r0, uint32_t r1) {
  matmul_scalar32(w, g, in, out, stride, r0, r1);
  if (w.dtype == DType::kQ4 && in.batch == 3 && r1 > r0) {
    uint32_t u;
    std::memcpy(&u, &out[2 * stride + r1 - 1], 4);
    u ^= 1;  // one ulp on the last row of the last vector
    std::memcpy(&out[2 * stride + r1 - 1], &u, 4);
  }
}
void wrong_first_vector_only(const TensorView& w, uint32_t g, const MatmulInput& in, float* out,
                             uint32_t stride, uint32_t r0, uint32_t r1) {
  MatmulInput one = in;
  one.batch = 1;
  matmul_scalar32(w, g, one, out, stride, r0, r1);
}
void wrong_signed_nibbles(const TensorView& w, uint32_t g, const MatmulInput& in, float* out,
                          uint32_t stride, uint32_t r0, uint32_t r1) {
  // Forgets the -8: treats every Q4 nibble as unsigned, i.e. adds 8 * qsum * scales.
  matmul_scalar32(w, g, in, out, stride, r0, r1);
  if (w.dtype != DType::kQ4) return;
  const uint32_t groups = (w.cols + g - 1) / g;
  for (uint32_t b = 0; b < in.batch; b++) {
    for (uint32_t r = r0; r < r1; r++) {
      int32_t q = 0;
      for (uint32_t k = 0; k < groups; k++) q += in.xq[b].qsum[k];
      if (q != 0) out[b * stride + r] += 1.0f;
    }
  }
}
void wrong_writes_outside(const TensorView& w, uint32_t g, const MatmulInput& in, float* out,
                          uint32_t stride, uint32_t r0, uint32_t r1) {
  matmul_scalar32(w, g, in, out, stride, r0 > 0 ? r0 - 1 : r0, r1);  // one row too many
}
void wrong_q8_only(const TensorView& w, uint32_t g, const MatmulInput& in, float* out,
                   uint32_t stride, uint32_t r0, uint32_t r1) {
  matmul_scalar32(w, g, in, out, stride, r0, r1);
  if (w.dtype == DType::kQ8 && g == 32 && r1 > r0) out[r0] = -out[r0] + 0.5f;
}
void wrong_in_wide_blocks(const TensorView& w, uint32_t g, const MatmulInput& in, float* out,
                          uint32_t stride, uint32_t r0, uint32_t r1) {
  // Right on short rows, wrong once a row holds a whole 4-group (512-bit) block, batch 1.
  matmul_scalar32(w, g, in, out, stride, r0, r1);
  if (w.dtype == DType::kQ4 && w.cols >= 4 * g && in.batch == 1 && r1 > r0) out[r1 - 1] *= 2.0f;
}

}  // namespace

TEST(KernelCheck, EveryKernelOfTheTablePassesAndIsKept) {
  uint32_t n = 0;
  const Kernel* table = kernel_table(&n);
  const Kernel* fallback = find_kernel("scalar32");
  ASSERT_NE(fallback, nullptr);
  for (uint32_t i = 0; i < n; i++) {
    if (!table[i].available()) continue;
    auto s = scratch();
    const KernelCheckResult r = check_kernel(table[i].matmul, s.data() + 3, s.size() - 3);
    EXPECT_TRUE(r.identical) << table[i].name << " failed case " << r.failed_case;
    EXPECT_GE(r.cases, 9u);
    EXPECT_EQ(kernel_after_check(&table[i], fallback, r), &table[i]);
  }
}

TEST(KernelCheck, AWrongStandInFailsAndTheFallbackIsChosen) {
  const Kernel* fallback = find_kernel("scalar32");
  ASSERT_NE(fallback, nullptr);
  struct Bad {
    const char* name;
    MatmulFn fn;
  };
  const Bad bad[] = {{"one ulp on one output", wrong_last_bit},
                     {"only the first batch vector", wrong_first_vector_only},
                     {"nibbles without the -8", wrong_signed_nibbles},
                     {"writes a row outside its range", wrong_writes_outside},
                     {"wrong only for Q8", wrong_q8_only},
                     {"wrong only in whole 4-group blocks", wrong_in_wide_blocks}};
  for (const Bad& b : bad) {
    auto s = scratch();
    const KernelCheckResult r = check_kernel(b.fn, s.data(), s.size());
    EXPECT_FALSE(r.identical) << b.name;
    const Kernel candidate{"pie-stand-in", b.fn, quantize_input, [] { return true; }};
    EXPECT_EQ(kernel_after_check(&candidate, fallback, r), fallback) << b.name;
  }
}

TEST(KernelCheck, TooLittleScratchOrNoKernelIsAFailureNotACrash) {
  auto s = scratch();
  EXPECT_FALSE(check_kernel(matmul_scalar32, s.data(), 100).identical);
  EXPECT_FALSE(check_kernel(nullptr, s.data(), s.size()).identical);
  EXPECT_FALSE(check_kernel(matmul_scalar32, nullptr, s.size()).identical);
  const Kernel* fallback = find_kernel("reference");
  EXPECT_EQ(kernel_after_check(nullptr, fallback, KernelCheckResult{}), fallback);
}
