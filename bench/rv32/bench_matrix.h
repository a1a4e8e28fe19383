// Synthetic weights for the rv32 benches (kernel_bench, op_bench): the engine's row layout
// (fp16 group scales padded to 4 bytes, then Q4 or Q8 data, rows 4-byte aligned), scales in
// [0.5, 2) (exponent 14 or 15) and xorshift32 data bytes, so every run sees the same matrix.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "engine/kernels.h"

namespace llmwire {
namespace bench {

inline uint32_t xorshift32(uint32_t* s) {
  *s ^= *s << 13;
  *s ^= *s >> 17;
  *s ^= *s << 5;
  return *s;
}

// Fills `w` (rows x the returned row_stride bytes) and returns its view.
inline TensorView fill_matrix(DType dt, uint32_t rows, uint32_t cols, uint32_t group, uint8_t* w,
                              uint32_t* state) {
  const uint32_t groups = (cols + group - 1) / group;
  const uint32_t scale_bytes = (groups * 2u + 3u) & ~3u;
  const uint32_t data = dt == DType::kQ4 ? groups * group / 2 : groups * group;
  const uint32_t stride = (scale_bytes + data + 3u) & ~3u;
  for (uint32_t r = 0; r < rows; r++) {
    uint8_t* row = w + (size_t)r * stride;
    for (uint32_t g = 0; g < groups; g++) {
      const uint16_t h = (uint16_t)(0x3800 | (xorshift32(state) & 0x07FF));
      row[2 * g] = (uint8_t)h;
      row[2 * g + 1] = (uint8_t)(h >> 8);
    }
    for (uint32_t i = scale_bytes; i < stride; i++) row[i] = (uint8_t)xorshift32(state);
  }
  TensorView v;
  v.dtype = dt;
  v.rows = rows;
  v.cols = cols;
  v.row_stride = stride;
  v.data = w;
  return v;
}

}  // namespace bench
}  // namespace llmwire
