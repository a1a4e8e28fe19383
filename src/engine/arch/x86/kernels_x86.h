// The x86-64 quantized kernels, compiled once per instruction set by the small files beside
// this one (each with its own target flags, never -march=native for the whole build):
//   kernels_avx2.cpp        vpmaddubsw + vpmaddwd                  (LLMWIRE_X86_VNNI 0)
//   kernels_avx512vnni.cpp  vpdpbusd, EVEX encoding (AVX512-VL)    (LLMWIRE_X86_VNNI 1)
//   kernels_avxvnni.cpp     vpdpbusd, VEX encoding (AVX-VNNI)      (LLMWIRE_X86_VNNI 2)
// Bit-identical to matmul_reference:
//  - the integer group sum is exact: unsigned nibbles (0..15) times int8 activations, minus
//    8 * qsum; Q8 as |w| * sign(x, w) (AVX2) or (w + 128) * x minus 128 * qsum (VNNI); no
//    int16 pair sum can saturate (|2 * 128 * 127| < 32768);
//  - eight rows are computed together, one per float lane, each lane doing the reference's
//    p = ws * xs; t = float(isum) * p; acc = acc + t in ascending group order;
//  - fp16 scales go through F16C (exact).
// No inline function from an engine header is called here: a copy compiled with these flags
// could be the one the linker keeps for callers on CPUs without them. Struct fields only.
#include <immintrin.h>
#include <string.h>

#include "engine/kernels.h"
#include "engine/mathfn.h"
#include "engine/sampler.h"

#if defined(__GNUC__) && !defined(__clang__)
// GCC 12 reports its own _mm512_undefined_*() placeholders inside AVX-512 intrinsics as
// "may be used uninitialized" (a false positive; every lane is written).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#ifndef LLMWIRE_X86_NAME
#error \
    "define LLMWIRE_X86_NAME, LLMWIRE_X86_QNAME and LLMWIRE_X86_VNNI before including kernels_x86.h"
#endif

namespace llmwire {
namespace {

// acc + the int32 sums of four adjacent products u8 x s8.
inline __m256i dot_u8s8(__m256i acc, __m256i u, __m256i s) {
#if LLMWIRE_X86_VNNI == 1
  return _mm256_dpbusd_epi32(acc, u, s);
#elif LLMWIRE_X86_VNNI == 2
  return _mm256_dpbusd_avx_epi32(acc, u, s);
#else
  return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
#endif
}

// Q8: acc + sum of w * x (AVX2), or of (w + 128) * x (VNNI; kQ8Offset * qsum is subtracted).
#if LLMWIRE_X86_VNNI
constexpr int32_t kQ8Offset = 128;
inline __m256i dot_s8s8(__m256i acc, __m256i w, __m256i x) {
  return dot_u8s8(acc, _mm256_xor_si256(w, _mm256_set1_epi8((char)0x80)), x);
}
#else
constexpr int32_t kQ8Offset = 0;
inline __m256i dot_s8s8(__m256i acc, __m256i w, __m256i x) {
  return dot_u8s8(acc, _mm256_abs_epi8(w), _mm256_sign_epi8(x, w));
}
#endif

inline __m256i load256(const void* p) {
  return _mm256_loadu_si256(static_cast<const __m256i*>(p));
}
inline __m128i load128(const void* p) {
  return _mm_loadu_si128(static_cast<const __m128i*>(p));
}
inline __m256i join(__m128i lo, __m128i hi) {
  return _mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1);
}
inline uint16_t load_half(const uint8_t* p) {
  uint16_t v;
  memcpy(&v, p, 2);
  return v;
}

// 16 bytes of a Q4 group -> 32 unsigned nibbles: low nibbles in the low lane, high in the high.
inline __m256i q4_unpack(const uint8_t* p) {
  const __m128i b = load128(p);
  return _mm256_and_si256(join(b, _mm_srli_epi16(b, 4)), _mm256_set1_epi8(0x0F));
}

// Unsigned (Q4) or offset (Q8, VNNI) integer sum of one group, as 8 int32 partial sums.
// Byte j of a Q4 group holds column j (low nibble) and column j + group/2 (high nibble).
template <bool kQ4, bool kG32>
inline __m256i group_dot(const uint8_t* wg, const int8_t* xg, uint32_t group) {
  __m256i acc = _mm256_setzero_si256();
  if (kQ4) {
    const uint32_t half = kG32 ? 16u : group / 2;
    for (uint32_t k = 0; k < half; k += 16) {
      const __m256i x = kG32 ? load256(xg) : join(load128(xg + k), load128(xg + half + k));
      acc = dot_u8s8(acc, q4_unpack(wg + k), x);
    }
  } else {
    const uint32_t n = kG32 ? 32u : group;
    for (uint32_t k = 0; k < n; k += 32) acc = dot_s8s8(acc, load256(wg + k), load256(xg + k));
  }
  return acc;
}

// Lane i of the result = the sum of the 8 lanes of v[i].
inline __m256i hsum8(const __m256i* v) {
  const __m256i t0 = _mm256_hadd_epi32(v[0], v[1]), t1 = _mm256_hadd_epi32(v[2], v[3]);
  const __m256i t2 = _mm256_hadd_epi32(v[4], v[5]), t3 = _mm256_hadd_epi32(v[6], v[7]);
  const __m256i u0 = _mm256_hadd_epi32(t0, t1), u1 = _mm256_hadd_epi32(t2, t3);
  return _mm256_add_epi32(_mm256_permute2x128_si256(u0, u1, 0x20),
                          _mm256_permute2x128_si256(u0, u1, 0x31));
}
inline int32_t hsum1(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
  return _mm_cvtsi128_si32(s);
}

struct Shape {
  uint32_t group, groups, scale_bytes, gbytes;
  int32_t offset;  // subtracted times the group's qsum
};

// Rows [r, r + 8), one per float lane; out[b][r..r+8) is contiguous.
template <bool kQ4, bool kG32>
void rows8(const TensorView& w, const Shape& s, const MatmulInput& in, float* out,
           uint32_t out_stride, uint32_t r) {
  const uint8_t* rows[8];
  for (uint32_t i = 0; i < 8; i++) rows[i] = w.data + (size_t)(r + i) * w.row_stride;
  for (uint32_t b = 0; b < in.batch; b++) {
    const QuantizedInput& xq = in.xq[b];
    __m256 acc = _mm256_setzero_ps();
    for (uint32_t g = 0; g < s.groups; g++) {
      const int8_t* xg = xq.q + (size_t)g * s.group;
      const size_t wo = s.scale_bytes + (size_t)g * s.gbytes;
      __m256i d[8];
      for (uint32_t i = 0; i < 8; i++) d[i] = group_dot<kQ4, kG32>(rows[i] + wo, xg, s.group);
      __m256i isum = hsum8(d);
      if (s.offset) isum = _mm256_sub_epi32(isum, _mm256_set1_epi32(s.offset * xq.qsum[g]));
      alignas(16) uint16_t h[8];
      for (uint32_t i = 0; i < 8; i++) h[i] = load_half(rows[i] + 2 * g);
      const __m256 ws = _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(h)));
      const __m256 p = _mm256_mul_ps(ws, _mm256_set1_ps(xq.scale[g]));
      acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_cvtepi32_ps(isum), p));
    }
    _mm256_storeu_ps(out + (size_t)b * out_stride + r, acc);
  }
}

// Groups of 32 with several input vectors (a prompt chunk), weight-stationary: each group's
// weights are unpacked, transposed and its scales converted once for up to kBatchChunk
// vectors. After the 8x8 dword transpose, t[k] holds columns 4k..4k+3 of row i in lane i, so
// eight u8 x s8 dot instructions against a broadcast activation dword leave row i's exact
// group sum in lane i: no horizontal sums per vector.
constexpr uint32_t kBatchChunk = 16;
inline void transpose8(__m256i* v) {
  const __m256i a0 = _mm256_unpacklo_epi32(v[0], v[1]), a1 = _mm256_unpackhi_epi32(v[0], v[1]);
  const __m256i a2 = _mm256_unpacklo_epi32(v[2], v[3]), a3 = _mm256_unpackhi_epi32(v[2], v[3]);
  const __m256i a4 = _mm256_unpacklo_epi32(v[4], v[5]), a5 = _mm256_unpackhi_epi32(v[4], v[5]);
  const __m256i a6 = _mm256_unpacklo_epi32(v[6], v[7]), a7 = _mm256_unpackhi_epi32(v[6], v[7]);
  const __m256i b0 = _mm256_unpacklo_epi64(a0, a2), b1 = _mm256_unpackhi_epi64(a0, a2);
  const __m256i b2 = _mm256_unpacklo_epi64(a1, a3), b3 = _mm256_unpackhi_epi64(a1, a3);
  const __m256i b4 = _mm256_unpacklo_epi64(a4, a6), b5 = _mm256_unpackhi_epi64(a4, a6);
  const __m256i b6 = _mm256_unpacklo_epi64(a5, a7), b7 = _mm256_unpackhi_epi64(a5, a7);
  v[0] = _mm256_permute2x128_si256(b0, b4, 0x20);
  v[1] = _mm256_permute2x128_si256(b1, b5, 0x20);
  v[2] = _mm256_permute2x128_si256(b2, b6, 0x20);
  v[3] = _mm256_permute2x128_si256(b3, b7, 0x20);
  v[4] = _mm256_permute2x128_si256(b0, b4, 0x31);
  v[5] = _mm256_permute2x128_si256(b1, b5, 0x31);
  v[6] = _mm256_permute2x128_si256(b2, b6, 0x31);
  v[7] = _mm256_permute2x128_si256(b3, b7, 0x31);
}
inline __m256i bcast32(const int8_t* p) {
  int32_t v;
  memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

template <bool kQ4>
void rows8_g32(const TensorView& w, const Shape& s, const MatmulInput& in, float* out,
               uint32_t out_stride, uint32_t r) {
  const uint8_t* rows[8];
  for (uint32_t i = 0; i < 8; i++) rows[i] = w.data + (size_t)(r + i) * w.row_stride;
  for (uint32_t b0 = 0; b0 < in.batch; b0 += kBatchChunk) {
    const uint32_t nb = in.batch - b0 < kBatchChunk ? in.batch - b0 : kBatchChunk;
    const QuantizedInput* xqs = in.xq + b0;
    __m256 acc[kBatchChunk];
    for (uint32_t bi = 0; bi < nb; bi++) acc[bi] = _mm256_setzero_ps();
    for (uint32_t g = 0; g < s.groups; g++) {
      const size_t wo = s.scale_bytes + (size_t)g * s.gbytes;
      __m256i t[8];
      for (uint32_t i = 0; i < 8; i++) t[i] = kQ4 ? q4_unpack(rows[i] + wo) : load256(rows[i] + wo);
      transpose8(t);
      alignas(16) uint16_t h[8];
      for (uint32_t i = 0; i < 8; i++) h[i] = load_half(rows[i] + 2 * g);
      const __m256 ws = _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(h)));
      for (uint32_t bi = 0; bi < nb; bi++) {
        const QuantizedInput& xq = xqs[bi];
        const int8_t* xg = xq.q + (size_t)g * 32;
        // Two chains of four (the sum is exact in any order).
        __m256i d0 = _mm256_setzero_si256(), d1 = _mm256_setzero_si256();
        for (uint32_t k = 0; k < 8; k += 2) {
          d0 = kQ4 ? dot_u8s8(d0, t[k], bcast32(xg + 4 * k))
                   : dot_s8s8(d0, t[k], bcast32(xg + 4 * k));
          d1 = kQ4 ? dot_u8s8(d1, t[k + 1], bcast32(xg + 4 * k + 4))
                   : dot_s8s8(d1, t[k + 1], bcast32(xg + 4 * k + 4));
        }
        __m256i isum = _mm256_add_epi32(d0, d1);
        if (s.offset) isum = _mm256_sub_epi32(isum, _mm256_set1_epi32(s.offset * xq.qsum[g]));
        const __m256 p = _mm256_mul_ps(ws, _mm256_set1_ps(xq.scale[g]));
        acc[bi] = _mm256_add_ps(acc[bi], _mm256_mul_ps(_mm256_cvtepi32_ps(isum), p));
      }
    }
    for (uint32_t bi = 0; bi < nb; bi++) {
      _mm256_storeu_ps(out + (size_t)(b0 + bi) * out_stride + r, acc[bi]);
    }
  }
}

template <bool kQ4, bool kG32>
void row1(const TensorView& w, const Shape& s, const MatmulInput& in, float* out,
          uint32_t out_stride, uint32_t r) {
  const uint8_t* row = w.data + (size_t)r * w.row_stride;
  for (uint32_t b = 0; b < in.batch; b++) {
    const QuantizedInput& xq = in.xq[b];
    float acc = 0.0f;
    for (uint32_t g = 0; g < s.groups; g++) {
      const int8_t* xg = xq.q + (size_t)g * s.group;
      const int32_t isum =
          hsum1(group_dot<kQ4, kG32>(row + s.scale_bytes + (size_t)g * s.gbytes, xg, s.group)) -
          s.offset * xq.qsum[g];
      const float p = _cvtsh_ss(load_half(row + 2 * g)) * xq.scale[g];
      acc = acc + (float)isum * p;
    }
    out[(size_t)b * out_stride + r] = acc;
  }
}

// The 8 rows from `r` are one contiguous stretch, read in a row-interleaved order the
// hardware prefetcher follows poorly: ask for them before they are needed (~20% less CPU
// time per token on stories42M q4, measured).
constexpr uint32_t kPrefetchAhead = 1;
inline void prefetch_rows(const TensorView& w, uint32_t r, uint32_t r1) {
  if (r + 8 > r1) return;
  const char* p = reinterpret_cast<const char*>(w.data + (size_t)r * w.row_stride);
  const char* e = p + (size_t)8 * w.row_stride;
  for (; p < e; p += 64) _mm_prefetch(p, _MM_HINT_T0);
}

#if LLMWIRE_X86_VNNI == 1
// Q4, groups of 32, one input vector, 512 bits: four groups per register. The 64 bytes of
// four groups hold, per 16-byte lane, columns 0-15 of a group (low nibbles) and 16-31 (high
// nibbles); the activations are permuted once per call to the same order (q4_wide_input),
// so one load, two masks and two vpdpbusd give 16 int32 partial sums, four per group, and
// no shuffle touches a weight. The accumulator starts at -8 * qsum (exact integer sums in any
// order). Four rows' partials are reduced together into lane 4g + i = row i's sum of group g,
// their fp16 scales are transposed to the same lanes, and the float chain of each row then
// runs in ascending group order as in the reference, four rows per 128-bit lane.
constexpr uint32_t kWideGroups = 4;
struct alignas(64) WideBlock {
  __m512i xlo, xhi;  // activations against the low / high nibbles of 4 groups
  __m512i init;      // lane 4j: -8 * qsum of group j (the -8 offset, folded in)
  __m512 xs;         // lanes 4j..4j+3: the activation scale of group j
};

void q4_wide_input(const QuantizedInput& xq, uint32_t groups, WideBlock* blk) {
  for (uint32_t k = 0; 4 * k < groups; k++) {
    const uint32_t n = groups - 4 * k < 4 ? groups - 4 * k : 4;
    const int8_t* x = xq.q + (size_t)k * 128;
    // The input holds exactly `groups` groups: never read past them.
    const __mmask64 ma = n >= 2 ? ~0ull : (1ull << (n * 32)) - 1;
    const __mmask64 mb = n == 4 ? ~0ull : n == 3 ? 0xFFFFFFFFull : 0;
    const __m512i a = _mm512_maskz_loadu_epi8(ma, x), b = _mm512_maskz_loadu_epi8(mb, x + 64);
    blk[k].xlo = _mm512_shuffle_i64x2(a, b, 0x88);  // 128-bit lanes a0 a2 b0 b2
    blk[k].xhi = _mm512_shuffle_i64x2(a, b, 0xDD);  // a1 a3 b1 b3
    alignas(64) int32_t init[16] = {};
    alignas(64) float xs[16] = {};
    for (uint32_t j = 0; j < n; j++) {
      init[4 * j] = -8 * xq.qsum[4 * k + j];
      for (uint32_t i = 0; i < 4; i++) xs[4 * j + i] = xq.scale[4 * k + j];
    }
    blk[k].init = _mm512_load_si512(init);
    blk[k].xs = _mm512_load_ps(xs);
  }
}

// One row's 16 partial sums for block k (groups 4k..4k+n).
// Masked loads only for a partial block: on AMD Zen a masked load that misses the cache
// measured 3x slower than a plain one.
template <bool kFull>
inline __m512i q4_wide_dot(const uint8_t* data, const WideBlock& b, __mmask64 m) {
  const __m512i v = kFull ? _mm512_loadu_si512(data) : _mm512_maskz_loadu_epi8(m, data);
  const __m512i nib = _mm512_set1_epi8(0x0F);
  const __m512i lo = _mm512_and_si512(v, nib);
  const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), nib);
  return _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(b.init, lo, b.xlo), hi, b.xhi);
}

// Four rows' partials -> lane 4g + i = row i's integer sum of group g.
inline __m512i reduce4(__m512i a, __m512i b, __m512i c, __m512i d) {
  const __m512i ab = _mm512_add_epi32(_mm512_unpacklo_epi32(a, b), _mm512_unpackhi_epi32(a, b));
  const __m512i cd = _mm512_add_epi32(_mm512_unpacklo_epi32(c, d), _mm512_unpackhi_epi32(c, d));
  return _mm512_add_epi32(_mm512_unpacklo_epi64(ab, cd), _mm512_unpackhi_epi64(ab, cd));
}

// The fp16 scales of groups 4k..4k+3 of four rows, as floats in lane 4g + i.
inline __m512 scales4(const uint8_t* const* rows, uint32_t k) {
  const __m128i ab = _mm_unpacklo_epi64(_mm_loadl_epi64((const __m128i*)(rows[0] + 8 * k)),
                                        _mm_loadl_epi64((const __m128i*)(rows[1] + 8 * k)));
  const __m128i cd = _mm_unpacklo_epi64(_mm_loadl_epi64((const __m128i*)(rows[2] + 8 * k)),
                                        _mm_loadl_epi64((const __m128i*)(rows[3] + 8 * k)));
  const __m512 f = _mm512_cvtph_ps(join(ab, cd));  // lane 4i + g
  const __m512i t = _mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0);
  return _mm512_permutexvar_ps(t, f);
}

// acc (row i in lane i) + each group's four products, in ascending group order.
inline __m128 chain4(__m128 acc, __m512 t, uint32_t n) {
  acc = _mm_add_ps(acc, _mm512_castps512_ps128(t));
  if (n > 1) acc = _mm_add_ps(acc, _mm512_extractf32x4_ps(t, 1));
  if (n > 2) acc = _mm_add_ps(acc, _mm512_extractf32x4_ps(t, 2));
  if (n > 3) acc = _mm_add_ps(acc, _mm512_extractf32x4_ps(t, 3));
  return acc;
}

// Block k of rows [r, r + 4 * kQuads): kQuads independent float chains overlap. Full blocks
// (n == 4) take no mask and no branch.
template <uint32_t kQuads, bool kFull>
inline void q4_wide_block(const uint8_t* const* rows, size_t o, uint32_t k, const WideBlock& b,
                          uint32_t n, __m128* acc) {
  const __mmask64 m = kFull ? ~0ull : (1ull << (n * 16)) - 1;
  for (uint32_t q = 0; q < kQuads; q++) {
    const uint8_t* const* rq = rows + 4 * q;
    const __m512i isum =
        reduce4(q4_wide_dot<kFull>(rq[0] + o, b, m), q4_wide_dot<kFull>(rq[1] + o, b, m),
                q4_wide_dot<kFull>(rq[2] + o, b, m), q4_wide_dot<kFull>(rq[3] + o, b, m));
    const __m512 p = _mm512_mul_ps(scales4(rq, k), b.xs);
    acc[q] = chain4(acc[q], _mm512_mul_ps(_mm512_cvtepi32_ps(isum), p), kFull ? 4 : n);
  }
}

#else
// The same for AVX2 / AVX-VNNI, 256 bits: two groups per register (lane 4g + i = row i's
// sum of group g, g = 0, 1), scales from 4-byte loads.
constexpr uint32_t kWideGroups = 2;
struct alignas(32) WideBlock {
  __m256i xlo, xhi, init;
  __m256 xs;
};

void q4_wide_input(const QuantizedInput& xq, uint32_t groups, WideBlock* blk) {
  for (uint32_t k = 0; 2 * k < groups; k++) {
    const bool two = 2 * k + 1 < groups;
    const int8_t* x = xq.q + (size_t)k * 64;
    const __m256i a = load256(x), b = two ? load256(x + 32) : _mm256_setzero_si256();
    blk[k].xlo = _mm256_permute2x128_si256(a, b, 0x20);  // a.lo b.lo
    blk[k].xhi = _mm256_permute2x128_si256(a, b, 0x31);  // a.hi b.hi
    const int32_t q1 = two ? -8 * xq.qsum[2 * k + 1] : 0;
    const float s1 = two ? xq.scale[2 * k + 1] : 0.0f, s0 = xq.scale[2 * k];
    blk[k].init = _mm256_setr_epi32(-8 * xq.qsum[2 * k], 0, 0, 0, q1, 0, 0, 0);
    blk[k].xs = _mm256_setr_ps(s0, s0, s0, s0, s1, s1, s1, s1);
  }
}

template <bool kFull>
inline __m256i q4_wide_dot(const uint8_t* data, const WideBlock& b) {
  const __m256i v =
      kFull ? load256(data) : _mm256_inserti128_si256(_mm256_setzero_si256(), load128(data), 0);
  const __m256i nib = _mm256_set1_epi8(0x0F);
  const __m256i lo = _mm256_and_si256(v, nib);
  const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), nib);
  return dot_u8s8(dot_u8s8(b.init, lo, b.xlo), hi, b.xhi);
}

inline __m256i reduce4(__m256i a, __m256i b, __m256i c, __m256i d) {
  const __m256i ab = _mm256_add_epi32(_mm256_unpacklo_epi32(a, b), _mm256_unpackhi_epi32(a, b));
  const __m256i cd = _mm256_add_epi32(_mm256_unpacklo_epi32(c, d), _mm256_unpackhi_epi32(c, d));
  return _mm256_add_epi32(_mm256_unpacklo_epi64(ab, cd), _mm256_unpackhi_epi64(ab, cd));
}

inline int32_t load_word(const uint8_t* p) {
  int32_t v;
  memcpy(&v, p, 4);
  return v;
}

inline __m256 scales4(const uint8_t* const* rows, uint32_t k) {
  const __m128i h = _mm_setr_epi32(load_word(rows[0] + 4 * k), load_word(rows[1] + 4 * k),
                                   load_word(rows[2] + 4 * k), load_word(rows[3] + 4 * k));
  const __m256 f = _mm256_cvtph_ps(h);  // lane 2i + g
  return _mm256_permutevar8x32_ps(f, _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7));
}

template <uint32_t kQuads, bool kFull>
inline void q4_wide_block(const uint8_t* const* rows, size_t o, uint32_t k, const WideBlock& b,
                          uint32_t n, __m128* acc) {
  for (uint32_t q = 0; q < kQuads; q++) {
    const uint8_t* const* rq = rows + 4 * q;
    const __m256i isum =
        reduce4(q4_wide_dot<kFull>(rq[0] + o, b), q4_wide_dot<kFull>(rq[1] + o, b),
                q4_wide_dot<kFull>(rq[2] + o, b), q4_wide_dot<kFull>(rq[3] + o, b));
    const __m256 t = _mm256_mul_ps(_mm256_cvtepi32_ps(isum), _mm256_mul_ps(scales4(rq, k), b.xs));
    acc[q] = _mm_add_ps(acc[q], _mm256_castps256_ps128(t));
    if (kFull || n > 1) acc[q] = _mm_add_ps(acc[q], _mm256_extractf128_ps(t, 1));
  }
}
#endif
constexpr uint32_t kWideMaxBlocks = 256 / kWideGroups;  // 8192 columns; wider rows take rows8

template <uint32_t kQuads>
void q4_wide_rows(const TensorView& w, const Shape& s, const WideBlock* blk, float* out,
                  uint32_t r) {
  const uint8_t* rows[4 * kQuads];
  for (uint32_t i = 0; i < 4 * kQuads; i++) rows[i] = w.data + (size_t)(r + i) * w.row_stride;
  __m128 acc[kQuads];
  for (uint32_t q = 0; q < kQuads; q++) acc[q] = _mm_setzero_ps();
  const uint32_t full = s.groups / kWideGroups;
  for (uint32_t k = 0; k < full; k++) {
    q4_wide_block<kQuads, true>(rows, s.scale_bytes + (size_t)k * 16 * kWideGroups, k, blk[k],
                                kWideGroups, acc);
  }
  if (s.groups % kWideGroups) {
    q4_wide_block<kQuads, false>(rows, s.scale_bytes + (size_t)full * 16 * kWideGroups, full,
                                 blk[full], s.groups % kWideGroups, acc);
  }
  for (uint32_t q = 0; q < kQuads; q++) _mm_storeu_ps(out + r + 4 * q, acc[q]);
}

#if LLMWIRE_X86_VNNI == 1
// Q8, groups of 32, one input vector, 512 bits: two groups per register, weights and
// activations both in natural order. (w + 128) * x through vpdpbusd, the accumulator started
// at -128 * qsum; reduce4 leaves lane 4L + i = row i's sum over 128-bit lane L, and a group
// is lanes L = 2g and 2g + 1, added once more. Then the reference's float chain per row.
struct alignas(64) Q8Block {
  __m512i init;  // lane 0: -128 * qsum of group 2k; lane 8: of group 2k + 1
  __m256 xs;     // lanes 4g..4g+3: the activation scale of group 2k + g
};

void q8_wide_input(const QuantizedInput& xq, uint32_t groups, Q8Block* blk) {
  for (uint32_t k = 0; 2 * k < groups; k++) {
    const bool two = 2 * k + 1 < groups;
    const int32_t q1 = two ? -128 * xq.qsum[2 * k + 1] : 0;
    const float s0 = xq.scale[2 * k], s1 = two ? xq.scale[2 * k + 1] : 0.0f;
    blk[k].init =
        _mm512_setr_epi32(-128 * xq.qsum[2 * k], 0, 0, 0, 0, 0, 0, 0, q1, 0, 0, 0, 0, 0, 0, 0);
    blk[k].xs = _mm256_setr_ps(s0, s0, s0, s0, s1, s1, s1, s1);
  }
}

template <bool kFull>
inline __m512i q8_wide_dot(const uint8_t* data, __m512i x, __m512i init) {
  const __m512i v =
      kFull ? _mm512_loadu_si512(data) : _mm512_castsi256_si512(load256(data));  // upper: x = 0
  return _mm512_dpbusd_epi32(init, _mm512_xor_si512(v, _mm512_set1_epi8((char)0x80)), x);
}

inline __m256 q8_scales4(const uint8_t* const* rows, uint32_t k) {
  int32_t h[4];
  for (uint32_t i = 0; i < 4; i++) memcpy(&h[i], rows[i] + 4 * k, 4);
  const __m256 f = _mm256_cvtph_ps(_mm_setr_epi32(h[0], h[1], h[2], h[3]));  // lane 2i + g
  return _mm256_permutevar8x32_ps(f, _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7));
}

template <uint32_t kQuads, bool kFull>
inline void q8_wide_block(const uint8_t* const* rows, size_t o, uint32_t k, const int8_t* xg,
                          const Q8Block& b, __m128* acc) {
  // A partial block has one group: its activations' upper half must be zero.
  const __m512i x = kFull ? _mm512_loadu_si512(xg) : _mm512_castsi256_si512(load256(xg));
  const __m512i xz = kFull ? x : _mm512_inserti64x4(x, _mm256_setzero_si256(), 1);
  for (uint32_t q = 0; q < kQuads; q++) {
    const uint8_t* const* rq = rows + 4 * q;
    const __m512i p = reduce4(
        q8_wide_dot<kFull>(rq[0] + o, xz, b.init), q8_wide_dot<kFull>(rq[1] + o, xz, b.init),
        q8_wide_dot<kFull>(rq[2] + o, xz, b.init), q8_wide_dot<kFull>(rq[3] + o, xz, b.init));
    const __m256i lo = _mm512_castsi512_si256(p), hi = _mm512_extracti64x4_epi64(p, 1);
    const __m256i isum = _mm256_add_epi32(_mm256_permute2x128_si256(lo, hi, 0x20),
                                          _mm256_permute2x128_si256(lo, hi, 0x31));
    const __m256 t =
        _mm256_mul_ps(_mm256_cvtepi32_ps(isum), _mm256_mul_ps(q8_scales4(rq, k), b.xs));
    acc[q] = _mm_add_ps(acc[q], _mm256_castps256_ps128(t));
    if (kFull) acc[q] = _mm_add_ps(acc[q], _mm256_extractf128_ps(t, 1));
  }
}

template <uint32_t kQuads>
void q8_wide_rows(const TensorView& w, const Shape& s, const int8_t* x, const Q8Block* blk,
                  float* out, uint32_t r) {
  const uint8_t* rows[4 * kQuads];
  for (uint32_t i = 0; i < 4 * kQuads; i++) rows[i] = w.data + (size_t)(r + i) * w.row_stride;
  __m128 acc[kQuads];
  for (uint32_t q = 0; q < kQuads; q++) acc[q] = _mm_setzero_ps();
  const uint32_t full = s.groups / 2;
  for (uint32_t k = 0; k < full; k++) {
    q8_wide_block<kQuads, true>(rows, s.scale_bytes + (size_t)k * 64, k, x + (size_t)k * 64, blk[k],
                                acc);
  }
  if (s.groups % 2) {
    q8_wide_block<kQuads, false>(rows, s.scale_bytes + (size_t)full * 64, full,
                                 x + (size_t)full * 64, blk[full], acc);
  }
  for (uint32_t q = 0; q < kQuads; q++) _mm_storeu_ps(out + r + 4 * q, acc[q]);
}
#endif

template <bool kQ4, bool kG32>
void rows(const TensorView& w, const Shape& s, const MatmulInput& in, float* out,
          uint32_t out_stride, uint32_t r0, uint32_t r1) {
  uint32_t r = r0;
  if (kQ4 && kG32 && in.batch == 1 && s.groups <= kWideGroups * kWideMaxBlocks) {
    WideBlock blk[kWideMaxBlocks];
    q4_wide_input(in.xq[0], s.groups, blk);
    for (; r + 8 <= r1; r += 8) {
      prefetch_rows(w, r + 8 * kPrefetchAhead, r1);
      q4_wide_rows<2>(w, s, blk, out, r);
    }
    for (; r + 4 <= r1; r += 4) q4_wide_rows<1>(w, s, blk, out, r);
  }
#if LLMWIRE_X86_VNNI == 1
  if (!kQ4 && kG32 && in.batch == 1 && s.groups <= 256) {
    Q8Block blk[128];
    q8_wide_input(in.xq[0], s.groups, blk);
    for (; r + 8 <= r1; r += 8) {
      prefetch_rows(w, r + 8, r1);
      q8_wide_rows<2>(w, s, in.xq[0].q, blk, out, r);
    }
    for (; r + 4 <= r1; r += 4) q8_wide_rows<1>(w, s, in.xq[0].q, blk, out, r);
  }
#endif
  for (; r + 8 <= r1; r += 8) {
    prefetch_rows(w, r + 8, r1);
    if constexpr (kG32) {
      if (in.batch == 1) {
        rows8<kQ4, true>(w, s, in, out, out_stride, r);  // the accumulator stays in a register
      } else {
        rows8_g32<kQ4>(w, s, in, out, out_stride, r);
      }
    } else {
      rows8<kQ4, kG32>(w, s, in, out, out_stride, r);
    }
  }
  for (; r < r1; r++) row1<kQ4, kG32>(w, s, in, out, out_stride, r);
}

// One full group of quantize_input, eight floats at a time, with the reference's operations
// (so the same bits): amax ignores NaN (vmaxps returns its second operand, the running max,
// when the first is NaN) and is order-free once NaN is out; x * inv rounds to nearest even
// (rint_f32 for |v| < 2^22; anything larger clamps to +-127 either way); NaN becomes 0.
inline void quantize_group(const float* x, uint32_t group, int8_t* q, float* scale, int32_t* qsum) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
  __m256 m = _mm256_setzero_ps();
  for (uint32_t i = 0; i < group; i += 8) {
    m = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(x + i), abs_mask), m);
  }
  __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
  m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
  m4 = _mm_max_ss(m4, _mm_shuffle_ps(m4, m4, 1));
  const float amax = _mm_cvtss_f32(m4);
  *scale = amax / 127.0f;
  const float inv_s = amax == 0.0f ? 0.0f : 127.0f / amax;
  const __m256 inv = _mm256_set1_ps(inv_s);
  const __m256 hi = _mm256_set1_ps(127.0f), lo = _mm256_set1_ps(-127.0f);
  __m256i sum = _mm256_setzero_si256();
  for (uint32_t i = 0; i < group; i += 8) {
    const __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + i), inv);
    __m256 r = _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    r = _mm256_and_ps(r, _mm256_cmp_ps(v, v, _CMP_ORD_Q));  // NaN -> +0
    r = _mm256_min_ps(_mm256_max_ps(r, lo), hi);
    const __m256i iv = _mm256_cvttps_epi32(r);
    sum = _mm256_add_epi32(sum, iv);
    const __m256i p16 = _mm256_packs_epi32(iv, iv);   // exact: |iv| <= 127
    const __m256i p8 = _mm256_packs_epi16(p16, p16);  // lane bytes 0..3 = 4 values
    const __m128i b =
        _mm_unpacklo_epi32(_mm256_castsi256_si128(p8), _mm256_extracti128_si256(p8, 1));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(q + i), b);
  }
  *qsum = hsum1(sum);
}

}  // namespace

void LLMWIRE_X86_QNAME(const float* x, uint32_t n, uint32_t group, int8_t* q, float* scale,
                       int32_t* qsum) {
  if (group == 0 || group % 8 != 0) {
    quantize_input(x, n, group, q, scale, qsum);
    return;
  }
  const uint32_t full = n / group;
  for (uint32_t g = 0; g < full; g++) {
    quantize_group(x + (size_t)g * group, group, q + (size_t)g * group, scale + g, qsum + g);
  }
  // A partial last group (zero-padded) goes through the portable code.
  if (full * group < n) {
    const size_t o = (size_t)full * group;
    quantize_input(x + o, n - (uint32_t)o, group, q + o, scale + full, qsum + full);
  }
}

#if LLMWIRE_X86_VNNI == 1
namespace {
// v[j] lane i -> v[i] lane j (16 x 16 floats).
inline void transpose16(__m512* v) {
  __m512 a[16], b[16];
  for (int j = 0; j < 16; j += 2) {
    a[j] = _mm512_unpacklo_ps(v[j], v[j + 1]);
    a[j + 1] = _mm512_unpackhi_ps(v[j], v[j + 1]);
  }
  for (int j = 0; j < 16; j += 4) {
    for (int h = 0; h < 2; h++) {
      const __m512d x = _mm512_castps_pd(a[j + h]), y = _mm512_castps_pd(a[j + h + 2]);
      b[j + 2 * h] = _mm512_castpd_ps(_mm512_unpacklo_pd(x, y));
      b[j + 2 * h + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(x, y));
    }
  }
  // b[4m + c] holds, per 128-bit lane L, column 4L + c of rows 4m..4m+3.
  for (int c = 0; c < 4; c++) {
    const __m512 t0 = _mm512_shuffle_f32x4(b[c], b[4 + c], 0x88);
    const __m512 t1 = _mm512_shuffle_f32x4(b[c], b[4 + c], 0xDD);
    const __m512 t2 = _mm512_shuffle_f32x4(b[8 + c], b[12 + c], 0x88);
    const __m512 t3 = _mm512_shuffle_f32x4(b[8 + c], b[12 + c], 0xDD);
    v[c] = _mm512_shuffle_f32x4(t0, t2, 0x88);
    v[8 + c] = _mm512_shuffle_f32x4(t0, t2, 0xDD);
    v[4 + c] = _mm512_shuffle_f32x4(t1, t3, 0x88);
    v[12 + c] = _mm512_shuffle_f32x4(t1, t3, 0xDD);
  }
}
}  // namespace

// attend_reference with sixteen positions per register: each position's products
// q[i] * k_t[i] (rounded one by one, as in the reference) are transposed so that lane t
// adds them in ascending i; the values are accumulated sixteen i at a time, t ascending.
// Head sizes that are not a multiple of 16 (or above 256) take attend_reference.
void attend_avx512vnni(const float* q, const float* k, const float* v, size_t stride, uint32_t n,
                       uint32_t hs, float* att, float* out) {
  if (hs % 16 != 0 || hs > 256) {
    attend_reference(q, k, v, stride, n, hs, att, out);
    return;
  }
  const uint32_t chunks = hs / 16;
  const float sqrt_hs = sqrt_f32((float)hs);
  const __m512 div = _mm512_set1_ps(sqrt_hs);
  uint32_t t0 = 0;
  for (; t0 + 16 <= n; t0 += 16) {
    __m512 s = _mm512_setzero_ps();
    for (uint32_t c = 0; c < chunks; c++) {
      const __m512 qc = _mm512_loadu_ps(q + 16 * c);
      __m512 p[16];
      for (uint32_t j = 0; j < 16; j++) {
        p[j] = _mm512_mul_ps(qc, _mm512_loadu_ps(k + (t0 + j) * stride + 16 * c));
      }
      transpose16(p);
      for (uint32_t i = 0; i < 16; i++) s = _mm512_add_ps(s, p[i]);
    }
    _mm512_storeu_ps(att + t0, _mm512_div_ps(s, div));
  }
  for (uint32_t t = t0; t < n; t++) {
    const float* kt = k + t * stride;
    float score = 0.0f;
    for (uint32_t i = 0; i < hs; i++) score = score + q[i] * kt[i];
    att[t] = score / sqrt_hs;
  }
  softmax(att, n);
  __m512 o[16];
  for (uint32_t c = 0; c < chunks; c++) o[c] = _mm512_setzero_ps();
  for (uint32_t t = 0; t < n; t++) {
    const __m512 a = _mm512_set1_ps(att[t]);
    const float* vt = v + t * stride;
    for (uint32_t c = 0; c < chunks; c++) {
      o[c] = _mm512_add_ps(o[c], _mm512_mul_ps(a, _mm512_loadu_ps(vt + 16 * c)));
    }
  }
  for (uint32_t c = 0; c < chunks; c++) _mm512_storeu_ps(out + 16 * c, o[c]);
}
#endif

void LLMWIRE_X86_NAME(const TensorView& w, uint32_t group, const MatmulInput& in, float* out,
                      uint32_t out_stride, uint32_t r0, uint32_t r1) {
  const bool q4 = w.dtype == DType::kQ4;
  if ((!q4 && w.dtype != DType::kQ8) || group == 0 || group % 32 != 0) {
    matmul_scalar32(w, group, in, out, out_stride, r0, r1);  // F32, or groups of 8/16/24
    return;
  }
  Shape s;
  s.group = group;
  s.groups = (w.cols + group - 1) / group;
  s.scale_bytes = (s.groups * 2u + 3u) & ~3u;
  s.gbytes = q4 ? group / 2 : group;
  s.offset = q4 ? 8 : kQ8Offset;
  if (q4) {
    if (group == 32)
      rows<true, true>(w, s, in, out, out_stride, r0, r1);
    else
      rows<true, false>(w, s, in, out, out_stride, r0, r1);
  } else {
    if (group == 32)
      rows<false, true>(w, s, in, out, out_stride, r0, r1);
    else
      rows<false, false>(w, s, in, out, out_stride, r0, r1);
  }
}

}  // namespace llmwire

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
