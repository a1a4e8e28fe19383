#include "engine/kernel_check.h"

#include <string.h>

namespace llmwire {
namespace {

struct Case {
  DType dtype;
  uint32_t group, rows, cols, batch, r0, r1;
  uint8_t fill;  // 0: pseudo-random weight bytes, else every weight byte is `fill`
  bool extreme_x;
};

// Q4 and Q8; 32 is the PIE fast path, 8 goes to scalar32; 80 columns end in a partial group;
// 288 columns x 9 rows reach the x86 kernels' whole 4-group (Q4) and 2-group (Q8) blocks, a
// partial last block and 8-row sets.
constexpr Case kCases[] = {
    {DType::kQ4, 32, 5, 96, 1, 0, 5, 0, false},    {DType::kQ4, 32, 7, 80, 3, 1, 6, 0, false},
    {DType::kQ4, 32, 4, 64, 1, 0, 4, 0xFF, true},  {DType::kQ4, 32, 4, 64, 3, 0, 4, 0x00, true},
    {DType::kQ4, 32, 9, 32, 3, 2, 9, 0x88, false}, {DType::kQ4, 8, 5, 40, 3, 0, 5, 0, false},
    {DType::kQ8, 32, 5, 96, 3, 0, 5, 0, false},    {DType::kQ8, 32, 4, 64, 1, 0, 4, 0x80, true},
    {DType::kQ8, 8, 3, 24, 1, 0, 3, 0, false},     {DType::kQ4, 32, 9, 288, 1, 0, 9, 0, false},
    {DType::kQ4, 32, 9, 288, 3, 1, 8, 0, false},   {DType::kQ8, 32, 9, 288, 1, 0, 9, 0, false},
};
constexpr uint32_t kMaxRows = 9, kMaxCols = 288, kMaxBatch = 3, kMaxGroups = 12;

uint32_t next(uint32_t* s) {  // xorshift32
  *s ^= *s << 13;
  *s ^= *s >> 17;
  *s ^= *s << 5;
  return *s;
}

uint8_t* align16(uint8_t* p) {
  return p + ((16u - ((uintptr_t)p & 15u)) & 15u);
}

// Scratch layout (each piece 16-byte aligned): weights, q, scales, qsums, x, two outputs.
constexpr size_t kWeightBytes = kMaxRows * (2 * kMaxGroups + kMaxCols);
constexpr size_t kQBytes = kMaxBatch * kMaxGroups * 32;
constexpr size_t round16(size_t n) {
  return (n + 15) & ~(size_t)15;
}
constexpr size_t kNeeded = 16 + round16(kWeightBytes) + round16(kQBytes) +
                           round16(kMaxBatch * kMaxGroups * 4) * 2 + round16(kMaxCols * 4) +
                           2 * round16(kMaxBatch * kMaxRows * 4);
static_assert(kNeeded <= kKernelCheckScratchBytes, "raise kKernelCheckScratchBytes");

bool run_case(const Case& c, MatmulFn candidate, uint8_t* base, uint32_t seed) {
  const uint32_t groups = (c.cols + c.group - 1) / c.group;
  const uint32_t scale_bytes = (groups * 2u + 3u) & ~3u;
  const uint32_t stride =
      scale_bytes + (c.dtype == DType::kQ4 ? groups * c.group / 2 : groups * c.group);
  uint8_t* w = base;
  int8_t* q = reinterpret_cast<int8_t*>(w + round16(kWeightBytes));
  float* s = reinterpret_cast<float*>(reinterpret_cast<uint8_t*>(q) + round16(kQBytes));
  int32_t* qs = reinterpret_cast<int32_t*>(reinterpret_cast<uint8_t*>(s) +
                                           round16(kMaxBatch * kMaxGroups * 4));
  float* x = reinterpret_cast<float*>(reinterpret_cast<uint8_t*>(qs) +
                                      round16(kMaxBatch * kMaxGroups * 4));
  float* want = reinterpret_cast<float*>(reinterpret_cast<uint8_t*>(x) + round16(kMaxCols * 4));
  float* got = want + round16(kMaxBatch * kMaxRows * 4) / 4;

  uint32_t st = seed;
  for (uint32_t r = 0; r < c.rows; r++) {
    uint8_t* row = w + (size_t)r * stride;
    for (uint32_t g = 0; g < groups; g++) {
      // Scales: mostly normal (0.25..2), some zero and subnormal, negative ones.
      uint16_t h = (uint16_t)(0x3400 + (next(&st) & 0x0FFF));
      if ((r + g) % 7 == 3) h = 0x0000;
      if ((r + g) % 7 == 5) h = (uint16_t)(next(&st) & 0x03FF);
      if ((r + g) % 3 == 1) h |= 0x8000;
      row[2 * g] = (uint8_t)h;
      row[2 * g + 1] = (uint8_t)(h >> 8);
    }
    for (uint32_t i = groups * 2; i < scale_bytes; i++) row[i] = 0;
    for (uint32_t i = scale_bytes; i < stride; i++) row[i] = c.fill ? c.fill : (uint8_t)next(&st);
  }
  QuantizedInput xq[kMaxBatch];
  for (uint32_t b = 0; b < c.batch; b++) {
    for (uint32_t i = 0; i < c.cols; i++) {
      if (c.extreme_x) {
        x[i] = (b + i) % 3 == 0 ? -1.0f : 1.0f;  // quantizes to +-127
      } else {
        x[i] = (float)(int32_t)(next(&st) >> 8) / 2097152.0f - 4.0f;
      }
    }
    int8_t* qb = q + (size_t)b * kMaxGroups * 32;
    quantize_input(x, c.cols, c.group, qb, s + b * kMaxGroups, qs + b * kMaxGroups);
    xq[b].q = qb;
    xq[b].scale = s + b * kMaxGroups;
    xq[b].qsum = qs + b * kMaxGroups;
    xq[b].groups = groups;
  }
  TensorView tv;
  tv.dtype = c.dtype;
  tv.rows = c.rows;
  tv.cols = c.cols;
  tv.row_stride = stride;
  tv.data = w;
  MatmulInput in;
  in.xq = xq;
  in.batch = c.batch;
  const size_t out_bytes = (size_t)c.batch * c.rows * 4;
  memset(want, 0, out_bytes);
  memset(got, 0, out_bytes);
  matmul_reference(tv, c.group, in, want, c.rows, c.r0, c.r1);
  candidate(tv, c.group, in, got, c.rows, c.r0, c.r1);
  return memcmp(want, got, out_bytes) == 0;
}

}  // namespace

KernelCheckResult check_kernel(MatmulFn candidate, uint8_t* scratch, size_t scratch_len) {
  KernelCheckResult r;
  if (candidate == nullptr || scratch == nullptr || scratch_len < kNeeded) return r;
  uint8_t* base = align16(scratch);
  r.identical = true;
  for (uint32_t i = 0; i < sizeof kCases / sizeof kCases[0]; i++) {
    r.cases++;
    if (!run_case(kCases[i], candidate, base, 0x9E3779B9u + i)) {
      r.identical = false;
      r.failed_case = i;
      break;
    }
  }
  return r;
}

const Kernel* kernel_after_check(const Kernel* candidate, const Kernel* fallback,
                                 const KernelCheckResult& result) {
  return candidate != nullptr && result.identical ? candidate : fallback;
}

}  // namespace llmwire
