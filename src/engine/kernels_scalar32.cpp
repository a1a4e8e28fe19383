// The portable optimized kernel, written for in-order 32-bit cores (Xtensa LX7, RV32) and the
// fallback everywhere else. Bit-identical to the reference: only the exact integer part of a
// group dot product is reorganised (unsigned nibbles times int8, the -8 offset folded in
// through the group's qsum); the float accumulation over groups keeps the reference order.
//  - rows are 4-byte aligned (docs/FORMAT.md), so weights are read as aligned words, never
//    through memcpy (GCC for Xtensa does not inline a small fixed-size memcpy);
//  - a Q4 word holds 8 nibbles; two masks unpack them all (SWAR) before the byte extracts;
//  - two rows are computed together so each activation byte is loaded once for both, and
//    their two float chains overlap;
//  - fp16 scales are converted without data-dependent branches;
//  - nothing needs a 64-bit multiply.
#include "engine/fp16.h"
#include "engine/kernels.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the kernels read little-endian words"
#endif

namespace llmwire {
namespace {

typedef uint32_t aligned_u32 __attribute__((may_alias, aligned(4)));
typedef uint16_t aligned_u16 __attribute__((may_alias, aligned(2)));
typedef float aligned_f32 __attribute__((may_alias, aligned(4)));

inline uint32_t word(const uint8_t* p) {
  return *reinterpret_cast<const aligned_u32*>(p);
}
inline float scale_of(const uint8_t* row, uint32_t g) {
  return half_to_float_fast(reinterpret_cast<const aligned_u16*>(row)[g]);
}

// Products of the four bytes of `w` (unsigned nibbles, one per byte) with x[0..3].
inline int32_t dot4_u8(uint32_t w, const int8_t* x) {
  return (int32_t)(w & 0xFFu) * x[0] + (int32_t)((w >> 8) & 0xFFu) * x[1] +
         (int32_t)((w >> 16) & 0xFFu) * x[2] + (int32_t)(w >> 24) * x[3];
}

// Two rows' unsigned-nibble sums for one Q4 group: byte j of a group holds column j in its low
// nibble and column j + half in its high nibble.
inline void q4_group_x2(const uint8_t* wa, const uint8_t* wb, const int8_t* x, uint32_t half,
                        int32_t* sa, int32_t* sb) {
  int32_t a = 0, b = 0;
  for (uint32_t j = 0; j < half; j += 4) {
    const uint32_t va = word(wa + j), vb = word(wb + j);
    const int8_t* xl = x + j;
    const int8_t* xh = x + half + j;
    a += dot4_u8(va & 0x0F0F0F0Fu, xl) + dot4_u8((va >> 4) & 0x0F0F0F0Fu, xh);
    b += dot4_u8(vb & 0x0F0F0F0Fu, xl) + dot4_u8((vb >> 4) & 0x0F0F0F0Fu, xh);
  }
  *sa = a;
  *sb = b;
}

inline void q8_group_x2(const int8_t* wa, const int8_t* wb, const int8_t* x, uint32_t group,
                        int32_t* sa, int32_t* sb) {
  int32_t a = 0, b = 0;
  for (uint32_t j = 0; j < group; j += 4) {
    const int32_t x0 = x[j], x1 = x[j + 1], x2 = x[j + 2], x3 = x[j + 3];
    a += wa[j] * x0 + wa[j + 1] * x1 + wa[j + 2] * x2 + wa[j + 3] * x3;
    b += wb[j] * x0 + wb[j + 1] * x1 + wb[j + 2] * x2 + wb[j + 3] * x3;
  }
  *sa = a;
  *sb = b;
}

// Rows a and b (b may equal a for an odd last row) against every batch vector.
void quant_rows_x2(const TensorView& w, uint32_t group, const MatmulInput& in, float* out,
                   uint32_t out_stride, uint32_t ra, uint32_t rb) {
  const uint32_t groups = (w.cols + group - 1) / group;
  const uint32_t scale_bytes = (groups * 2u + 3u) & ~3u;
  const bool q4 = w.dtype == DType::kQ4;
  const uint32_t gbytes = q4 ? group / 2 : group;
  const uint8_t* row_a = w.data + (size_t)ra * w.row_stride;
  const uint8_t* row_b = w.data + (size_t)rb * w.row_stride;
  for (uint32_t b = 0; b < in.batch; b++) {
    const QuantizedInput& xq = in.xq[b];
    float acc_a = 0.0f, acc_b = 0.0f;
    for (uint32_t g = 0; g < groups; g++) {
      const uint8_t* wa = row_a + scale_bytes + (size_t)g * gbytes;
      const uint8_t* wb = row_b + scale_bytes + (size_t)g * gbytes;
      const int8_t* x = xq.q + (size_t)g * group;
      int32_t sa, sb;
      if (q4) {
        q4_group_x2(wa, wb, x, group / 2, &sa, &sb);
        sa -= 8 * xq.qsum[g];
        sb -= 8 * xq.qsum[g];
      } else {
        q8_group_x2(reinterpret_cast<const int8_t*>(wa), reinterpret_cast<const int8_t*>(wb), x,
                    group, &sa, &sb);
      }
      const float xs = xq.scale[g];
      const float pa = scale_of(row_a, g) * xs;
      const float pb = scale_of(row_b, g) * xs;
      acc_a = acc_a + (float)sa * pa;
      acc_b = acc_b + (float)sb * pb;
    }
    out[(size_t)b * out_stride + ra] = acc_a;
    out[(size_t)b * out_stride + rb] = acc_b;
  }
}

// F32: four rows' sequential chains at once, each in ascending column order.
void f32_rows(const TensorView& w, const MatmulInput& in, float* out, uint32_t out_stride,
              uint32_t r0, uint32_t r1) {
  uint32_t r = r0;
  for (; r + 4 <= r1; r += 4) {
    const aligned_f32* w0 = reinterpret_cast<const aligned_f32*>(w.data + (size_t)r * w.row_stride);
    const aligned_f32* w1 =
        reinterpret_cast<const aligned_f32*>(reinterpret_cast<const uint8_t*>(w0) + w.row_stride);
    const aligned_f32* w2 =
        reinterpret_cast<const aligned_f32*>(reinterpret_cast<const uint8_t*>(w1) + w.row_stride);
    const aligned_f32* w3 =
        reinterpret_cast<const aligned_f32*>(reinterpret_cast<const uint8_t*>(w2) + w.row_stride);
    for (uint32_t b = 0; b < in.batch; b++) {
      const float* x = in.x + (size_t)b * in.x_stride;
      float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
      for (uint32_t j = 0; j < w.cols; j++) {
        const float xj = x[j];
        a0 = a0 + w0[j] * xj;
        a1 = a1 + w1[j] * xj;
        a2 = a2 + w2[j] * xj;
        a3 = a3 + w3[j] * xj;
      }
      float* o = out + (size_t)b * out_stride + r;
      o[0] = a0;
      o[1] = a1;
      o[2] = a2;
      o[3] = a3;
    }
  }
  for (; r < r1; r++) {
    const aligned_f32* wr = reinterpret_cast<const aligned_f32*>(w.data + (size_t)r * w.row_stride);
    for (uint32_t b = 0; b < in.batch; b++) {
      const float* x = in.x + (size_t)b * in.x_stride;
      float acc = 0.0f;
      for (uint32_t j = 0; j < w.cols; j++) acc = acc + wr[j] * x[j];
      out[(size_t)b * out_stride + r] = acc;
    }
  }
}

}  // namespace

void matmul_scalar32(const TensorView& w, uint32_t group, const MatmulInput& in, float* out,
                     uint32_t out_stride, uint32_t r0, uint32_t r1) {
  if (w.dtype == DType::kF32) {
    f32_rows(w, in, out, out_stride, r0, r1);
    return;
  }
  uint32_t r = r0;
  for (; r + 2 <= r1; r += 2) quant_rows_x2(w, group, in, out, out_stride, r, r + 1);
  if (r < r1) quant_rows_x2(w, group, in, out, out_stride, r, r);
}

}  // namespace llmwire
