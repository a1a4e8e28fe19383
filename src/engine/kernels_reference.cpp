// Scalar reference kernels: the plainest statement of docs/NUMERICS.md.
#include <string.h>

#include "engine/fp16.h"
#include "engine/kernels.h"
#include "engine/mathfn.h"
#include "engine/sampler.h"

namespace llmwire {

void quantize_input(const float* x, uint32_t n, uint32_t group, int8_t* q, float* scale,
                    int32_t* qsum) {
  const uint32_t groups = (n + group - 1) / group;
  for (uint32_t g = 0; g < groups; g++) {
    const uint32_t begin = g * group;
    const uint32_t end = begin + group < n ? begin + group : n;
    float amax = 0.0f;
    for (uint32_t i = begin; i < end; i++) {
      const float a = x[i] < 0 ? -x[i] : x[i];
      if (a > amax) amax = a;
    }
    scale[g] = amax / 127.0f;
    const float inv = amax == 0.0f ? 0.0f : 127.0f / amax;
    int32_t sum = 0;
    for (uint32_t i = begin; i < begin + group; i++) {
      int32_t v = 0;
      if (i < end) {
        const float r = rint_f32(x[i] * inv);
        if (r > 127.0f) {
          v = 127;
        } else if (r < -127.0f) {
          v = -127;
        } else if (r == r) {  // NaN (from a damaged image) quantizes to 0, never UB
          v = (int32_t)r;
        }
      }
      q[i] = (int8_t)v;
      sum += v;
    }
    qsum[g] = sum;
  }
}

static float load_f32(const uint8_t* p) {
  float f;
  memcpy(&f, p, 4);
  return f;
}

void matmul_reference(const TensorView& w, uint32_t group, const MatmulInput& in, float* out,
                      uint32_t out_stride, uint32_t r0, uint32_t r1) {
  for (uint32_t r = r0; r < r1; r++) {
    const uint8_t* row = w.row(r);
    for (uint32_t b = 0; b < in.batch; b++) {
      float acc = 0.0f;
      if (w.dtype == DType::kF32) {
        const float* x = in.x + (size_t)b * in.x_stride;
        for (uint32_t j = 0; j < w.cols; j++) acc = acc + load_f32(row + 4 * j) * x[j];
      } else {
        const QuantizedInput& xq = in.xq[b];
        const uint32_t groups = (w.cols + group - 1) / group;
        const uint8_t* data = row + ((groups * 2u + 3u) & ~3u);
        for (uint32_t g = 0; g < groups; g++) {
          const float ws = half_to_float(load_u16(row + 2 * g));
          const int8_t* x = xq.q + (size_t)g * group;
          int32_t isum = 0;
          if (w.dtype == DType::kQ8) {
            const int8_t* wq = reinterpret_cast<const int8_t*>(data) + (size_t)g * group;
            for (uint32_t j = 0; j < group; j++) isum += (int32_t)wq[j] * x[j];
          } else {
            const uint8_t* wq = data + (size_t)g * (group / 2);
            for (uint32_t j = 0; j < group / 2; j++) {
              isum += ((int32_t)(wq[j] & 0x0F) - 8) * x[j];
              isum += ((int32_t)(wq[j] >> 4) - 8) * x[j + group / 2];
            }
          }
          const float p = ws * xq.scale[g];
          const float t = (float)isum * p;
          acc = acc + t;
        }
      }
      out[(size_t)b * out_stride + r] = acc;
    }
  }
}

void attend_reference(const float* q, const float* k, const float* v, size_t stride, uint32_t n,
                      uint32_t hs, float* att, float* out) {
  const float sqrt_hs = sqrt_f32((float)hs);
  // Four positions at a time: four independent chains, each in ascending i as below.
  uint32_t t0 = 0;
  for (; t0 + 4 <= n; t0 += 4) {
    const float* k0 = k + t0 * stride;
    const float* k1 = k0 + stride;
    const float* k2 = k1 + stride;
    const float* k3 = k2 + stride;
    float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
    for (uint32_t i = 0; i < hs; i++) {
      const float qi = q[i];
      s0 = s0 + qi * k0[i];
      s1 = s1 + qi * k1[i];
      s2 = s2 + qi * k2[i];
      s3 = s3 + qi * k3[i];
    }
    att[t0] = s0 / sqrt_hs;
    att[t0 + 1] = s1 / sqrt_hs;
    att[t0 + 2] = s2 / sqrt_hs;
    att[t0 + 3] = s3 / sqrt_hs;
  }
  for (uint32_t t = t0; t < n; t++) {
    const float* kt = k + t * stride;
    float score = 0.0f;
    for (uint32_t i = 0; i < hs; i++) score = score + q[i] * kt[i];
    att[t] = score / sqrt_hs;  // a division, as llama2.c does
  }
  softmax(att, n);
  // out[i] accumulates over t ascending; the i lanes are independent (vectorisable).
  float* __restrict o = out;
  for (uint32_t i = 0; i < hs; i++) o[i] = 0.0f;
  uint32_t t = 0;
  for (; t + 2 <= n; t += 2) {
    const float* __restrict v0 = v + t * stride;
    const float* __restrict v1 = v0 + stride;
    const float a0 = att[t], a1 = att[t + 1];
    for (uint32_t i = 0; i < hs; i++) o[i] = (o[i] + a0 * v0[i]) + a1 * v1[i];
  }
  if (t < n) {
    const float* __restrict vt = v + t * stride;
    const float a = att[t];
    for (uint32_t i = 0; i < hs; i++) o[i] = o[i] + a * vt[i];
  }
}

}  // namespace llmwire
