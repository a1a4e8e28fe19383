// Weight quantization for the converter: encodes float rows into the image's row format
// (docs/FORMAT.md). Q4/Q8 group scales are chosen to minimise each group's squared error
// (after the scale itself is rounded to fp16).
#pragma once

#include <stdint.h>

#include "engine/image_format.h"

namespace llmwire {

// Encodes one row of `cols` floats into row_stride_bytes(type, cols, group) bytes at `out`.
void encode_row(const float* w, uint32_t cols, DType type, uint32_t group, uint8_t* out);
// Encodes rows x cols floats (row-major) into rows * row_stride_bytes(...) bytes, spreading
// rows over up to `threads` threads (0: the host's cores). The bytes never depend on the
// thread count.
void encode_matrix(const float* w, uint32_t rows, uint32_t cols, DType type, uint32_t group,
                   uint8_t* out, unsigned threads = 0);
// Decodes one stored row back to floats (for tests and tools).
void decode_row(const uint8_t* row, uint32_t cols, DType type, uint32_t group, float* out);

}  // namespace llmwire
