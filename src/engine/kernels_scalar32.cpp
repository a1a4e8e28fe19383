// The portable optimized kernel, written for in-order 32-bit cores (Xtensa LX7, RV32) and the
// fallback everywhere else. Bit-identical to the reference: only the exact integer part of a
// group dot product is reorganised (unsigned nibbles times int8, the -8 offset folded in
// through the group's qsum); the float accumulation over groups keeps the reference order.
//  - rows are 4-byte aligned (docs/FORMAT.md), so weights are read as aligned words, never
//    through memcpy (GCC for Xtensa does not inline a small fixed-size memcpy);
//  - a Q4 word holds 8 nibbles; masks lift them out in pairs (SWAR) and one 32-bit multiply
//    does two MACs (q4_group_x2);
//  - two rows are computed together so each activation byte is loaded once for both, and
//    their two float chains overlap;
//  - fp16 scales are converted by a small exponent table, without data-dependent branches;
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
  return half_to_float_table(reinterpret_cast<const aligned_u16*>(row)[g]);
}

// Q4 with one 32-bit multiply per two MACs. A nibble pair in 16-bit lanes, N = n0 + n1*2^16,
// times X = x1 + x0*2^16 is n0*x1 + (n0*x0 + n1*x1)*2^16 (mod 2^32): the wanted two-term dot
// product sits in the upper half, the stray n0*x1 in the lower. Summing up to 8 such products
// keeps |lower| <= 8*15*128 < 2^15 and |upper| <= 8*2*15*128 < 2^15, so both come back
// exactly: lower = the low 16 bits sign-extended, upper = (sum - lower) >> 16.
// The pairs come straight out of a weight word (byte k = column j+k low nibble, column
// j+half+k high nibble): w & 0x000F000F holds columns j and j+2, (w >> 8) & ... j+1 and j+3,
// (w >> 4) & ... j+half and j+half+2, (w >> 12) & ... j+half+1 and j+half+3.
inline uint32_t pack_x(const int8_t* x, uint32_t lo, uint32_t hi) {  // x[lo] + x[hi] * 2^16
  return (uint32_t)(int32_t)x[lo] + ((uint32_t)(int32_t)x[hi] << 16);
}
inline int32_t unpack_upper(uint32_t acc) {
  const int32_t lower = (int16_t)(uint16_t)(acc & 0xFFFFu);
  return (int32_t)(acc - (uint32_t)lower) >> 16;  // exact: the difference is a multiple of 2^16
}

// One weight word of two rows (columns k..k+3 and half+k..half+k+3): 4 multiplies per row.
inline void q4_word_x2(const uint8_t* wa, const uint8_t* wb, const int8_t* x, uint32_t half,
                       uint32_t k, uint32_t* pa, uint32_t* pb) {
  const int8_t* xl = x + k;
  const int8_t* xh = x + half + k;
  const uint32_t x02 = pack_x(xl, 2, 0), x13 = pack_x(xl, 3, 1);
  const uint32_t y02 = pack_x(xh, 2, 0), y13 = pack_x(xh, 3, 1);
  const uint32_t va = word(wa + k), vb = word(wb + k);
  *pa += (va & 0x000F000Fu) * x02 + ((va >> 8) & 0x000F000Fu) * x13 +
         ((va >> 4) & 0x000F000Fu) * y02 + ((va >> 12) & 0x000F000Fu) * y13;
  *pb += (vb & 0x000F000Fu) * x02 + ((vb >> 8) & 0x000F000Fu) * x13 +
         ((vb >> 4) & 0x000F000Fu) * y02 + ((vb >> 12) & 0x000F000Fu) * y13;
}

// Two rows' unsigned-nibble sums for one Q4 group (half = group / 2, a multiple of 4). Always
// inlined: out of line (GCC's choice once three loops call it) it costs rv32 ~13% per token.
__attribute__((always_inline)) inline void q4_group_x2(const uint8_t* wa, const uint8_t* wb,
                                                       const int8_t* x, uint32_t half, int32_t* sa,
                                                       int32_t* sb) {
  int32_t a = 0, b = 0;
  uint32_t j = 0;
  for (; j + 8 <= half; j += 8) {  // two words: 8 products per row, then decode
    uint32_t pa = 0, pb = 0;
    q4_word_x2(wa, wb, x, half, j, &pa, &pb);
    q4_word_x2(wa, wb, x, half, j + 4, &pa, &pb);
    a += unpack_upper(pa);
    b += unpack_upper(pb);
  }
  if (j < half) {  // groups of 8 or 24: one word left
    uint32_t pa = 0, pb = 0;
    q4_word_x2(wa, wb, x, half, j, &pa, &pb);
    a += unpack_upper(pa);
    b += unpack_upper(pb);
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

// The common cases, Q4 groups of 32 (the default) and 16 (mixed images that spend bytes on
// scales), as one tight loop over the groups with bumped pointers (fewer live values than the
// general loop: no spills on rv32; measured, bench/emulated_mcu.sh).
template <uint32_t kGroup>
void q4_rows_x2(const uint8_t* row_a, const uint8_t* row_b, uint32_t groups, uint32_t scale_bytes,
                const QuantizedInput& xq, float* out_a, float* out_b) {
  const uint8_t* wa = row_a + scale_bytes;
  const uint8_t* wb = row_b + scale_bytes;
  const aligned_u16* ha = reinterpret_cast<const aligned_u16*>(row_a);
  const aligned_u16* hb = reinterpret_cast<const aligned_u16*>(row_b);
  const int8_t* x = xq.q;
  float acc_a = 0.0f, acc_b = 0.0f;
  for (uint32_t g = 0; g < groups; g++) {
    int32_t sa, sb;
    q4_group_x2(wa, wb, x, kGroup / 2, &sa, &sb);
    const int32_t off = 8 * xq.qsum[g];
    const float xs = xq.scale[g];
    const float pa = half_to_float_table(ha[g]) * xs;
    const float pb = half_to_float_table(hb[g]) * xs;
    acc_a = acc_a + (float)(sa - off) * pa;
    acc_b = acc_b + (float)(sb - off) * pb;
    wa += kGroup / 2;
    wb += kGroup / 2;
    x += kGroup;
  }
  *out_a = acc_a;
  *out_b = acc_b;
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
  if (q4 && (group == 32 || group == 16)) {
    for (uint32_t b = 0; b < in.batch; b++) {
      float* oa = &out[(size_t)b * out_stride + ra];
      float* ob = &out[(size_t)b * out_stride + rb];
      if (group == 32) {
        q4_rows_x2<32>(row_a, row_b, groups, scale_bytes, in.xq[b], oa, ob);
      } else {
        q4_rows_x2<16>(row_a, row_b, groups, scale_bytes, in.xq[b], oa, ob);
      }
    }
    return;
  }
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
