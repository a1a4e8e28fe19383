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
// order: null (columns in order) or a permutation of the columns to process in (e.g. by
// decreasing input energy, GPTQ's "act order"). Either way a group's scale is chosen when the
// sweep first reaches one of its columns, from the weights as the earlier errors left them.
// gptq_factor: from an n*n input Gram matrix XᵀX/tokens, the upper-triangular U with
// (P (H + damp*mean(diag H)*I) Pᵀ)^-1 = UᵀU (row-major n*n, P the order); false if not
// positive definite.
bool gptq_factor(const double* gram, uint32_t n, const uint32_t* order, double damp,
                 std::vector<double>* u);
// Encodes a row: each column (in the order) is rounded to the nearest level of its group's
// scale and its error, scaled by U, is subtracted from the columns not yet rounded.
// gram: null, or the (unpermuted) metric H: then single levels move by ±1 while the
// H-weighted error drops, the group scales are refitted jointly to the levels (kept only when
// better after fp16 rounding), and a few rounds of (pass, descent, refit) keep the best; the
// result is a local optimum of (w - ŵ)ᵀH(w - ŵ) over single-level moves.
void encode_row_gptq(const float* w, uint32_t cols, DType type, uint32_t group, const double* u,
                     const uint32_t* order, const double* gram, const double* importance,
                     uint8_t* out);
void encode_matrix_gptq(const float* w, uint32_t rows, uint32_t cols, DType type, uint32_t group,
                        const double* u, const uint32_t* order, const double* gram,
                        const double* importance, uint8_t* out, unsigned threads = 0);
// Decodes one stored row back to floats (for tests and tools).
void decode_row(const uint8_t* row, uint32_t cols, DType type, uint32_t group, float* out);

}  // namespace llmwire
