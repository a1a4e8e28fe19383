// Scalar reference kernels: the plainest statement of docs/NUMERICS.md.
#include <string.h>

#include "engine/fp16.h"
#include "engine/kernels.h"
#include "engine/mathfn.h"

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

}  // namespace llmwire
