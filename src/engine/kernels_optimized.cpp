// Optimized kernels. Only the exact integer part of a group dot product is reorganised
// (unsigned nibbles times int8, with the -8 offset folded in through the group's qsum);
// the float accumulation over groups keeps the reference order, so results are identical.
#include <string.h>

#include "engine/fp16.h"
#include "engine/kernels.h"

namespace llmwire {
namespace {

// Sum of products of 32-bit-aligned int8 blocks; written so compilers vectorise it.
inline int32_t dot_i8(const int8_t* a, const int8_t* b, uint32_t n) {
  int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  for (uint32_t j = 0; j < n; j += 4) {
    s0 += (int32_t)a[j] * b[j];
    s1 += (int32_t)a[j + 1] * b[j + 1];
    s2 += (int32_t)a[j + 2] * b[j + 2];
    s3 += (int32_t)a[j + 3] * b[j + 3];
  }
  return (s0 + s1) + (s2 + s3);
}

// Q4 group: sum_j (lo_j - 8) x_j + (hi_j - 8) x_{j+h} = sum lo_j x_j + hi_j x_{j+h} - 8 qsum.
inline int32_t dot_q4(const uint8_t* w, const int8_t* x, uint32_t half, int32_t qsum) {
  int32_t s0 = 0, s1 = 0;
  for (uint32_t j = 0; j < half; j++) {
    s0 += (int32_t)(w[j] & 0x0F) * x[j];
    s1 += (int32_t)(w[j] >> 4) * x[j + half];
  }
  return s0 + s1 - 8 * qsum;
}

void matmul_f32(const TensorView& w, const MatmulInput& in, float* out, uint32_t out_stride,
                uint32_t r0, uint32_t r1) {
  for (uint32_t r = r0; r < r1; r++) {
    const uint8_t* row = w.row(r);
    for (uint32_t b = 0; b < in.batch; b++) {
      const float* x = in.x + (size_t)b * in.x_stride;
      float acc = 0.0f;
      for (uint32_t j = 0; j < w.cols; j++) {
        float v;
        memcpy(&v, row + 4 * j, 4);
        acc = acc + v * x[j];
      }
      out[(size_t)b * out_stride + r] = acc;
    }
  }
}

}  // namespace

void matmul_optimized(const TensorView& w, uint32_t group, const MatmulInput& in, float* out,
                      uint32_t out_stride, uint32_t r0, uint32_t r1) {
  if (w.dtype == DType::kF32) {
    matmul_f32(w, in, out, out_stride, r0, r1);
    return;
  }
  const uint32_t groups = (w.cols + group - 1) / group;
  const uint32_t scale_bytes = (groups * 2u + 3u) & ~3u;
  const bool q4 = w.dtype == DType::kQ4;
  const uint32_t gbytes = q4 ? group / 2 : group;
  for (uint32_t r = r0; r < r1; r++) {
    const uint8_t* row = w.row(r);
    const uint8_t* data = row + scale_bytes;
    for (uint32_t b = 0; b < in.batch; b++) {
      const QuantizedInput& xq = in.xq[b];
      float acc = 0.0f;
      for (uint32_t g = 0; g < groups; g++) {
        const uint8_t* wg = data + (size_t)g * gbytes;
        const int8_t* x = xq.q + (size_t)g * group;
        const int32_t isum = q4 ? dot_q4(wg, x, group / 2, xq.qsum[g])
                                : dot_i8(reinterpret_cast<const int8_t*>(wg), x, group);
        const float p = half_to_float(load_u16(row + 2 * g)) * xq.scale[g];
        acc = acc + (float)isum * p;
      }
      out[(size_t)b * out_stride + r] = acc;
    }
  }
}

}  // namespace llmwire
