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

#ifndef LLMWIRE_X86_NAME
#error "define LLMWIRE_X86_NAME and LLMWIRE_X86_VNNI before including kernels_x86.h"
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

// Groups of 32, the common case: each group's weights are unpacked and its scales converted
// once for up to kBatchChunk input vectors (prompt positions), weight-stationary.
constexpr uint32_t kBatchChunk = 16;
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
      __m256i wv[8];
      for (uint32_t i = 0; i < 8; i++) {
        wv[i] = kQ4 ? q4_unpack(rows[i] + wo) : load256(rows[i] + wo);
      }
      alignas(16) uint16_t h[8];
      for (uint32_t i = 0; i < 8; i++) h[i] = load_half(rows[i] + 2 * g);
      const __m256 ws = _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(h)));
      for (uint32_t bi = 0; bi < nb; bi++) {
        const QuantizedInput& xq = xqs[bi];
        const __m256i x = load256(xq.q + (size_t)g * 32);
        __m256i d[8];
        for (uint32_t i = 0; i < 8; i++) {
          d[i] = kQ4 ? dot_u8s8(_mm256_setzero_si256(), wv[i], x)
                     : dot_s8s8(_mm256_setzero_si256(), wv[i], x);
        }
        __m256i isum = hsum8(d);
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

template <bool kQ4, bool kG32>
void rows(const TensorView& w, const Shape& s, const MatmulInput& in, float* out,
          uint32_t out_stride, uint32_t r0, uint32_t r1) {
  uint32_t r = r0;
  for (; r + 8 <= r1; r += 8) {
    // The next block's rows are one contiguous stretch, read here in a row-interleaved order
    // the hardware prefetcher follows poorly: ask for it a block ahead (~20% less CPU time
    // per token on stories42M q4, measured).
    if (r + 16 <= r1) {
      const char* p = reinterpret_cast<const char*>(w.data + (size_t)(r + 8) * w.row_stride);
      const char* e = p + (size_t)8 * w.row_stride;
      for (; p < e; p += 64) _mm_prefetch(p, _MM_HINT_T0);
    }
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

}  // namespace

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
