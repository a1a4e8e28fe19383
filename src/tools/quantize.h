// Weight quantization for the converter: encodes float rows into the image's row format
// (docs/FORMAT.md). Q4/Q8 group scales are chosen to minimise each group's squared error
// (after the scale itself is rounded to fp16).
#pragma once

#include <stdint.h>

#include <vector>

#include "engine/image_format.h"

namespace llmwire {

// Encodes one row of `cols` floats into row_stride_bytes(type, cols, group) bytes at `out`.
// importance: null, or `cols` non-negative per-column weights (calibration: the mean square
// of the activation each column multiplies); the Q4/Q8 scale search then minimises
// sum importance[j] * (w[j] - dequantized[j])^2 over each group instead of the plain error.
void encode_row(const float* w, uint32_t cols, DType type, uint32_t group, uint8_t* out,
                const double* importance = nullptr);
// Encodes rows x cols floats (row-major) into rows * row_stride_bytes(...) bytes, spreading
// rows over up to `threads` threads (0: the host's cores). The bytes never depend on the
// thread count.
void encode_matrix(const float* w, uint32_t rows, uint32_t cols, DType type, uint32_t group,
                   uint8_t* out, unsigned threads = 0, const double* importance = nullptr);
// GPTQ-style error compensation (Frantar et al. 2022) with the format's group scales.
// order: null (columns in order, each group's scale chosen when the group is reached), or a
// permutation of the columns to process in (e.g. by decreasing input energy, GPTQ's "act
// order"), every group's scale then chosen up front from the original weights.
// gptq_factor: from an n*n input Gram matrix XᵀX/tokens, the upper-triangular U with
// (P (H + damp*mean(diag H)*I) Pᵀ)^-1 = UᵀU (row-major n*n, P the order); false if not
// positive definite.
bool gptq_factor(const double* gram, uint32_t n, const uint32_t* order, double damp,
                 std::vector<double>* u);
// Encodes a row: each column (in the order) is rounded to the nearest level of its group's
// scale and its error, scaled by U, is subtracted from the columns not yet rounded.
// gram: null, or the (unpermuted) Gram matrix: the group scales are then refitted jointly
// to the final levels under the H-weighted error (kept only when better after fp16 rounding).
void encode_row_gptq(const float* w, uint32_t cols, DType type, uint32_t group, const double* u,
                     const uint32_t* order, const double* gram, const double* importance,
                     uint8_t* out);
void encode_matrix_gptq(const float* w, uint32_t rows, uint32_t cols, DType type, uint32_t group,
                        const double* u, const uint32_t* order, const double* gram,
                        const double* importance, uint8_t* out, unsigned threads = 0);
// Decodes one stored row back to floats (for tests and tools).
void decode_row(const uint8_t* row, uint32_t cols, DType type, uint32_t group, float* out);

}  // namespace llmwire
