// Row encoding for the converter (docs/FORMAT.md, "Row encoding").
//
// Scale choice for Q4/Q8 groups: the scale that minimises the group's squared error *after*
// the scale is rounded to fp16, found by a search:
//   1. a grid of candidate scales amax/k (Q4: k = 5.5 .. 9.0 in steps of 1/8, both signs;
//      Q8: k = 112 .. 128 in steps of 1/2), each rounded to fp16, every element quantized to
//      the nearest representable level (round half to even, then clamp), error measured;
//   2. least-squares refinement s = sum(w*q) / sum(q*q) of the best quantization (rounded to
//      fp16, requantized), repeated while it improves;
//   3. the fp16 neighbours (+-1, +-2 ulp) of the best scale.
// The grid contains amax/7 and max-magnitude/-8 (Q4) and amax/127 (Q8), so the result is
// never worse than plain absmax scaling for any group.
//
// Q4 levels are q in [-8, 7]; a negative scale turns them into the mirrored range, so the
// search covers both "[-8, 7] * s" and "[-7, 8] * |s|".
//
// Everything is double arithmetic in a fixed order with no libm calls, so the bytes are the
// same on every host and do not depend on how rows are spread over threads.
#include "tools/quantize.h"

#include <string.h>

#include <stdlib.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <thread>
#include <vector>

#if defined(__SSE2__) && !defined(LLMWIRE_QUANTIZE_SCALAR)
#include <emmintrin.h>
#endif

#include "engine/fp16.h"
#include "engine/image_header.h"

namespace llmwire {
namespace {

constexpr uint32_t kMaxGroup = 256;
// Q4 grid of the weighted search: amax/k for k = kLo/8 .. kHi/8.
constexpr int kWeightedKLo = 40, kWeightedKHi = 80;
// GPTQ: extra rounds of (levels for the refitted scales, refit), and at most this many
// sweeps of single-level moves after each GPTQ pass.
constexpr int kGptqRounds = 3;
constexpr int kDescentSweeps = 8;

struct Quantizer {
  const double* x;  // the group's values (non-finite already replaced by 0), zero padded
  uint32_t m;       // elements to look at: the valid ones rounded up to a multiple of 4
  double qmin, qmax;
  const double* wt = nullptr;  // per-element importance (zero padded), or null: plain error

  // Squared error of quantizing the group with scale s (s != 0, finite), weighted by wt when
  // given. m is a multiple of 4 (zero padding adds no error); four fixed accumulators keep
  // the sum order fixed.
  double error(double s) const {
    const double inv = 1.0 / s;
    const double magic = 6755399441055744.0;
    if (wt != nullptr) {
      double acc[4] = {0, 0, 0, 0};
      for (uint32_t j = 0; j < m; j += 4) {
        for (uint32_t u = 0; u < 4; u++) {
          const double v = std::min(qmax, std::max(qmin, x[j + u] * inv));
          const double d = x[j + u] - s * ((v + magic) - magic);
          acc[u] += wt[j + u] * (d * d);
        }
      }
      return (acc[0] + acc[1]) + (acc[2] + acc[3]);
    }
#if defined(__SSE2__) && !defined(LLMWIRE_QUANTIZE_SCALAR)
    // The same IEEE double operations as the scalar loop below, two lanes at a time: the
    // result is bit-identical.
    const __m128d vinv = _mm_set1_pd(inv), vs = _mm_set1_pd(s), vmagic = _mm_set1_pd(magic);
    const __m128d vmin = _mm_set1_pd(qmin), vmax = _mm_set1_pd(qmax);
    __m128d a01 = _mm_setzero_pd(), a23 = _mm_setzero_pd();
    for (uint32_t j = 0; j < m; j += 4) {
      const __m128d x01 = _mm_loadu_pd(x + j), x23 = _mm_loadu_pd(x + j + 2);
      __m128d v01 = _mm_min_pd(vmax, _mm_max_pd(vmin, _mm_mul_pd(x01, vinv)));
      __m128d v23 = _mm_min_pd(vmax, _mm_max_pd(vmin, _mm_mul_pd(x23, vinv)));
      v01 = _mm_sub_pd(_mm_add_pd(v01, vmagic), vmagic);
      v23 = _mm_sub_pd(_mm_add_pd(v23, vmagic), vmagic);
      const __m128d d01 = _mm_sub_pd(x01, _mm_mul_pd(vs, v01));
      const __m128d d23 = _mm_sub_pd(x23, _mm_mul_pd(vs, v23));
      a01 = _mm_add_pd(a01, _mm_mul_pd(d01, d01));
      a23 = _mm_add_pd(a23, _mm_mul_pd(d23, d23));
    }
    double acc[4];
    _mm_storeu_pd(acc, a01);
    _mm_storeu_pd(acc + 2, a23);
#else
    double acc[4] = {0, 0, 0, 0};
    for (uint32_t j = 0; j < m; j += 4) {
      for (uint32_t u = 0; u < 4; u++) {
        const double v = std::min(qmax, std::max(qmin, x[j + u] * inv));
        const double d = x[j + u] - s * ((v + magic) - magic);
        acc[u] += d * d;
      }
    }
#endif
    return (acc[0] + acc[1]) + (acc[2] + acc[3]);
  }

  // Integer levels for scale s into q[0..m).
  void levels(double s, int* q) const {
    const double inv = 1.0 / s;
    for (uint32_t j = 0; j < m; j++) {
      double v = x[j] * inv;
      v = v < qmin ? qmin : (v > qmax ? qmax : v);
      q[j] = (int)round_q(v);
    }
  }

  static double round_q(double v) {
    // v is within [qmin, qmax] (|v| <= 127), so the magic-number rounding is exact.
    const double magic = 6755399441055744.0;
    return (v + magic) - magic;
  }
};

struct Best {
  uint16_t h = 0;
  double err = 0;
  bool valid = false;
};

// Tries fp16 scale `h`; keeps it in *best if strictly better (first wins on ties).
inline void try_half(const Quantizer& qz, uint16_t h, Best* best) {
  if ((h & 0x7FFFu) == 0 || (h & 0x7C00u) == 0x7C00u) return;  // zero, inf, nan
  if (best->valid && best->h == h) return;
  const double e = qz.error((double)half_to_float(h));
  if (!best->valid || e < best->err) {
    best->h = h;
    best->err = e;
    best->valid = true;
  }
}

// Chooses the fp16 scale of one group and writes its integer levels (m valid, rest 0).
// wt: per-element importance (the error to minimise is sum wt * err^2), or null.
uint16_t choose_scale(const double* x, const double* wt, uint32_t m, bool q4, int* q) {
  double amax = 0, signed_max = 0;
  for (uint32_t j = 0; j < m; j++) {
    const double a = x[j] < 0 ? -x[j] : x[j];
    if (a > amax) {
      amax = a;
      signed_max = x[j];
    }
  }
  Quantizer qz{x, m, q4 ? -8.0 : -127.0, q4 ? 7.0 : 127.0, wt};
  Best best;
  if (amax > 0) {
    uint16_t prev = 0xFFFFu;
    auto candidate = [&](double s) {
      const uint16_t h = float_to_half((float)s);
      if (h == prev) return;  // neighbouring k often round to the same fp16 scale
      prev = h;
      try_half(qz, h, &best);
    };
    if (q4) {
      // Plain absmax candidates first so they win ties: amax/7 and max-magnitude/-8.
      candidate(amax / 7.0);
      candidate(signed_max / -8.0);
      // A weighted search may clip unimportant columns harder: a wider grid.
      const int k_lo = wt ? kWeightedKLo : 44, k_hi = wt ? kWeightedKHi : 72;
      for (int sign = 1; sign >= -1; sign -= 2) {
        prev = 0xFFFFu;
        for (int k8 = k_lo; k8 <= k_hi; k8++) candidate(sign * amax * 8.0 / (double)k8);
      }
    } else {
      candidate(amax / 127.0);
      prev = 0xFFFFu;
      for (int k2 = 224; k2 <= 256; k2++) candidate(amax * 2.0 / (double)k2);
    }
    if (!best.valid) {
      // Every candidate overflowed or underflowed fp16: use the largest finite / smallest
      // non-zero scale of the right magnitude.
      best.h = amax / (q4 ? 8.0 : 127.0) > 1.0 ? 0x7BFFu : 0x0001u;
      if (q4 && signed_max > 0) best.h |= 0x8000u;
      best.err = qz.error((double)half_to_float(best.h));
      best.valid = true;
    }
    // Least-squares refinement of the best quantization, while it improves.
    int lv[kMaxGroup];
    for (int it = 0; it < 4; it++) {
      qz.levels((double)half_to_float(best.h), lv);
      double wq = 0, qq = 0;
      for (uint32_t j = 0; j < m; j++) {
        const double c = wt ? wt[j] : 1.0;
        wq += c * (x[j] * (double)lv[j]);
        qq += c * ((double)lv[j] * (double)lv[j]);
      }
      if (qq == 0) break;
      const uint16_t before = best.h;
      try_half(qz, float_to_half((float)(wq / qq)), &best);
      if (best.h == before) break;
    }
    // fp16 neighbours of the best scale (same sign; the bit pattern is monotone in magnitude).
    const uint16_t center = best.h;
    for (int d = -2; d <= 2; d++) {
      if (d == 0) continue;
      const int mag = (int)(center & 0x7FFFu) + d;
      if (mag <= 0 || mag >= 0x7C00) continue;
      try_half(qz, (uint16_t)((center & 0x8000u) | (uint32_t)mag), &best);
    }
  }
  if (!best.valid || amax == 0) {
    for (uint32_t j = 0; j < m; j++) q[j] = 0;
    return 0;
  }
  qz.levels((double)half_to_float(best.h), q);
  return best.h;
}

}  // namespace

void encode_row(const float* w, uint32_t cols, DType type, uint32_t group, uint8_t* out,
                const double* importance) {
  if (type == DType::kF32) {
    for (uint32_t j = 0; j < cols; j++) store_u32(out + 4 * j, bits_from_f32(w[j]));
    return;
  }
  if (type != DType::kQ8 && type != DType::kQ4) return;
  if (group == 0 || group > kMaxGroup || group % 2 != 0) return;  // callers validate
  const bool q4 = type == DType::kQ4;
  const uint32_t n = (cols + group - 1) / group;
  const uint32_t scale_bytes = (n * 2u + 3u) & ~3u;
  memset(out, 0, row_stride_bytes(type, cols, group));
  uint8_t* groups = out + scale_bytes;
  double x[kMaxGroup], wt[kMaxGroup];
  int q[kMaxGroup];
  for (uint32_t g = 0; g < n; g++) {
    const uint32_t c0 = g * group;
    const uint32_t m = std::min(group, cols - c0);
    for (uint32_t j = 0; j < m; j++) {
      const float v = w[c0 + j];
      x[j] = std::isfinite(v) ? (double)v : 0.0;  // convert refuses non-finite weights first
    }
    for (uint32_t j = m; j < ((m + 3u) & ~3u); j++) x[j] = 0.0;
    if (importance != nullptr) {
      for (uint32_t j = 0; j < m; j++) wt[j] = importance[c0 + j];
      for (uint32_t j = m; j < ((m + 3u) & ~3u); j++) wt[j] = 0.0;
    }
    const uint16_t h = choose_scale(x, importance ? wt : nullptr, (m + 3u) & ~3u, q4, q);
    for (uint32_t j = m; j < group; j++) q[j] = 0;  // padding columns are q = 0
    store_u16(out + 2 * g, h);
    if (q4) {
      uint8_t* b = groups + (size_t)g * (group / 2);
      for (uint32_t j = 0; j < group / 2; j++) {
        b[j] = (uint8_t)((uint32_t)(q[j] + 8) | ((uint32_t)(q[j + group / 2] + 8) << 4));
      }
    } else {
      uint8_t* b = groups + (size_t)g * group;
      for (uint32_t j = 0; j < group; j++) b[j] = (uint8_t)(int8_t)q[j];
    }
  }
}

void encode_matrix(const float* w, uint32_t rows, uint32_t cols, DType type, uint32_t group,
                   uint8_t* out, unsigned threads, const double* importance) {
  const size_t stride = row_stride_bytes(type, cols, group ? group : 1);
  auto run = [&](uint32_t r0, uint32_t r1) {
    for (uint32_t r = r0; r < r1; r++) {
      encode_row(w + (size_t)r * cols, cols, type, group, out + (size_t)r * stride, importance);
    }
  };
  if (threads == 0) threads = std::thread::hardware_concurrency();
  if (threads == 0) threads = 1;
  if (threads > 32) threads = 32;
  // Threads only pay off for quantized matrices of some size.
  const uint64_t work = (uint64_t)rows * cols;
  if (type == DType::kF32 || work < 65536 || threads == 1 || rows < 2) {
    run(0, rows);
    return;
  }
  if (threads > rows) threads = rows;
  std::vector<std::thread> pool;
  pool.reserve(threads - 1);
  const uint32_t per = (rows + threads - 1) / threads;
  for (unsigned t = 1; t < threads; t++) {
    const uint32_t r0 = std::min(rows, t * per), r1 = std::min(rows, (t + 1) * per);
    if (r0 >= r1) continue;
    try {
      pool.emplace_back(run, r0, r1);
    } catch (...) {  // no thread available: do that share here
      run(r0, r1);
    }
  }
  run(0, std::min(rows, per));
  for (std::thread& th : pool) th.join();
}

bool gptq_factor(const double* gram, uint32_t n, const uint32_t* order, double damp,
                 std::vector<double>* u) {
  // H = gram + damp * mean(diag) * I (a column the text never excited gets the mean), its rows
  // and columns permuted by `order`.
  std::vector<double> h((size_t)n * n);
  for (uint32_t i = 0; i < n; i++) {
    for (uint32_t j = 0; j < n; j++) {
      h[(size_t)i * n + j] =
          order ? gram[(size_t)order[i] * n + order[j]] : gram[(size_t)i * n + j];
    }
  }
  double mean = 0;
  for (uint32_t i = 0; i < n; i++) mean += h[(size_t)i * n + i];
  mean /= (double)n;
  if (!(mean > 0)) mean = 1;
  for (uint32_t i = 0; i < n; i++) {
    double& d = h[(size_t)i * n + i];
    if (d == 0) d = mean;
    d += damp * mean;
  }
  // In place lower Cholesky factor L of a symmetric positive definite matrix a (row-major).
  auto cholesky = [n](std::vector<double>& a) {
    for (uint32_t j = 0; j < n; j++) {
      double dj = a[(size_t)j * n + j];
      for (uint32_t k = 0; k < j; k++) dj -= a[(size_t)j * n + k] * a[(size_t)j * n + k];
      if (!(dj > 0)) return false;
      dj = std::sqrt(dj);
      a[(size_t)j * n + j] = dj;
      for (uint32_t i = j + 1; i < n; i++) {
        double v = a[(size_t)i * n + j];
        const double* ai = &a[(size_t)i * n];
        const double* aj = &a[(size_t)j * n];
        for (uint32_t k = 0; k < j; k++) v -= ai[k] * aj[k];
        a[(size_t)i * n + j] = v / dj;
      }
      for (uint32_t k = j + 1; k < n; k++) a[(size_t)j * n + k] = 0;
    }
    return true;
  };
  if (!cholesky(h)) return false;
  // Hinv = L^-T L^-1: invert L (lower) column by column, then multiply.
  std::vector<double> li((size_t)n * n, 0.0);
  for (uint32_t c = 0; c < n; c++) {
    li[(size_t)c * n + c] = 1.0 / h[(size_t)c * n + c];
    for (uint32_t i = c + 1; i < n; i++) {
      double v = 0;
      for (uint32_t k = c; k < i; k++) v += h[(size_t)i * n + k] * li[(size_t)k * n + c];
      li[(size_t)i * n + c] = -v / h[(size_t)i * n + i];
    }
  }
  std::vector<double> hinv((size_t)n * n);
  for (uint32_t i = 0; i < n; i++) {
    for (uint32_t j = 0; j <= i; j++) {
      double v = 0;
      for (uint32_t k = i; k < n; k++) v += li[(size_t)k * n + i] * li[(size_t)k * n + j];
      hinv[(size_t)i * n + j] = v;
      hinv[(size_t)j * n + i] = v;
    }
  }
  // Upper factor U with Hinv = U^T U: the transpose of Hinv's lower Cholesky factor.
  if (!cholesky(hinv)) return false;
  u->assign((size_t)n * n, 0.0);
  for (uint32_t i = 0; i < n; i++) {
    for (uint32_t j = 0; j <= i; j++) (*u)[(size_t)j * n + i] = hinv[(size_t)i * n + j];
  }
  return true;
}

// Given the levels q of a row, the group scales that minimise (w - deq)ᵀ H (w - deq) jointly
// (a small linear system), rounded to fp16; kept only if that beats the current scales.
// Returns (w - deq)ᵀ H (w - deq) - wᵀHw for the scales kept (comparable between calls with
// other levels for the same row).
double refit_scales(const double* w, const int* q, const double* h, uint32_t cols, uint32_t group,
                    uint16_t* hs) {
  const uint32_t n = (cols + group - 1) / group;
  // v[g] = H[:, group g] q_g; A[g][k] = q_kᵀ v[g] over group k; b[g] = wᵀ v[g].
  std::vector<double> v((size_t)n * cols, 0.0), a((size_t)n * n, 0.0), b(n, 0.0);
  for (uint32_t g = 0; g < n; g++) {
    double* vg = &v[(size_t)g * cols];
    const uint32_t c1 = std::min(cols, (g + 1) * group);
    for (uint32_t i = 0; i < cols; i++) {
      const double* hi = h + (size_t)i * cols;
      double acc = 0;
      for (uint32_t j = g * group; j < c1; j++) acc += hi[j] * (double)q[j];
      vg[i] = acc;
    }
    for (uint32_t i = 0; i < cols; i++) b[g] += w[i] * vg[i];
    for (uint32_t k = 0; k < n; k++) {
      const uint32_t k1 = std::min(cols, (k + 1) * group);
      double acc = 0;
      for (uint32_t j = k * group; j < k1; j++) acc += (double)q[j] * vg[j];
      a[(size_t)g * n + k] = acc;
    }
  }
  auto objective = [&](const uint16_t* sc) {  // up to the constant wᵀHw
    double f = 0;
    for (uint32_t g = 0; g < n; g++) {
      const double sg = (double)half_to_float(sc[g]);
      f -= 2 * sg * b[g];
      for (uint32_t k = 0; k < n; k++) {
        f += sg * a[(size_t)g * n + k] * (double)half_to_float(sc[k]);
      }
    }
    return f;
  };
  // Gaussian elimination with partial pivoting on [A | b], a tiny ridge for empty groups.
  std::vector<double> m(a), s(b);
  double tr = 0;
  for (uint32_t g = 0; g < n; g++) tr += m[(size_t)g * n + g];
  const double ridge = 1e-12 * (tr > 0 ? tr / n : 1.0);
  for (uint32_t g = 0; g < n; g++) m[(size_t)g * n + g] += ridge;
  for (uint32_t c = 0; c < n; c++) {
    uint32_t p = c;
    for (uint32_t r = c + 1; r < n; r++) {
      if (std::fabs(m[(size_t)r * n + c]) > std::fabs(m[(size_t)p * n + c])) p = r;
    }
    if (!(std::fabs(m[(size_t)p * n + c]) > 0)) return objective(hs);
    if (p != c) {
      for (uint32_t k = 0; k < n; k++) std::swap(m[(size_t)p * n + k], m[(size_t)c * n + k]);
      std::swap(s[p], s[c]);
    }
    for (uint32_t r = c + 1; r < n; r++) {
      const double f = m[(size_t)r * n + c] / m[(size_t)c * n + c];
      for (uint32_t k = c; k < n; k++) m[(size_t)r * n + k] -= f * m[(size_t)c * n + k];
      s[r] -= f * s[c];
    }
  }
  for (uint32_t c = n; c-- > 0;) {
    double acc = s[c];
    for (uint32_t k = c + 1; k < n; k++) acc -= m[(size_t)c * n + k] * s[k];
    s[c] = acc / m[(size_t)c * n + c];
  }
  std::vector<uint16_t> cand(hs, hs + n);
  for (uint32_t g = 0; g < n; g++) {
    const uint16_t hh = float_to_half((float)s[g]);
    if ((hh & 0x7C00u) == 0x7C00u) return objective(hs);  // overflowed fp16
    cand[g] = hh;
  }
  const double before = objective(hs), after = objective(cand.data());
  if (!(after < before)) return before;
  std::copy(cand.begin(), cand.end(), hs);
  return after;
}

namespace {

// Greedy integer refinement in the H metric: with the scales fixed, move single levels by
// +-1 while (w - ŵ)ᵀH(w - ŵ) drops, at most `sweeps` passes over the columns. he = H(ŵ - w)
// is kept up to date, so a step costs O(cols).
void descend_levels(const double* w, const double* h, uint32_t cols, uint32_t group,
                    const uint16_t* hs, double qmin, double qmax, int sweeps, int* q) {
  std::vector<double> e(cols), he(cols, 0.0);
  for (uint32_t j = 0; j < cols; j++) {
    e[j] = (double)half_to_float(hs[j / group]) * (double)q[j] - w[j];
  }
  for (uint32_t i = 0; i < cols; i++) {
    const double* hi = h + (size_t)i * cols;
    double acc = 0;
    for (uint32_t k = 0; k < cols; k++) acc += hi[k] * e[k];
    he[i] = acc;
  }
  for (int sw = 0; sw < sweeps; sw++) {
    bool moved = false;
    for (uint32_t j = 0; j < cols; j++) {
      const double s = (double)half_to_float(hs[j / group]);
      if (s == 0) continue;
      const double hjj = h[(size_t)j * cols + j];
      // Change of the objective for q_j += d: 2 s d he_j + s² d² H_jj.
      int best_d = 0;
      double best = -1e-12 * s * s * hjj;  // a strict, scale-relative improvement
      for (int d = -1; d <= 1; d += 2) {
        const double nq = (double)q[j] + d;
        if (nq < qmin || nq > qmax) continue;
        const double delta = 2 * s * d * he[j] + s * s * hjj;
        if (delta < best) {
          best = delta;
          best_d = d;
        }
      }
      if (best_d == 0) continue;
      q[j] += best_d;
      const double step = s * best_d;
      for (uint32_t k = 0; k < cols; k++) he[k] += step * h[(size_t)k * cols + j];
      moved = true;
    }
    if (!moved) break;
  }
}

}  // namespace

void encode_row_gptq(const float* w, uint32_t cols, DType type, uint32_t group, const double* u,
                     const uint32_t* order, const double* gram, const double* importance,
                     uint8_t* out) {
  if (type != DType::kQ8 && type != DType::kQ4) return;
  if (group == 0 || group > kMaxGroup || group % 2 != 0) return;  // callers validate
  const bool q4 = type == DType::kQ4;
  const double qmin = q4 ? -8.0 : -127.0, qmax = q4 ? 7.0 : 127.0;
  const uint32_t n = (cols + group - 1) / group;
  const uint32_t scale_bytes = (n * 2u + 3u) & ~3u;
  memset(out, 0, row_stride_bytes(type, cols, group));
  uint8_t* groups = out + scale_bytes;
  std::vector<double> r(cols);  // remaining weights, in processing order
  std::vector<int> qall((size_t)n * group, 0);
  std::vector<uint16_t> hs(n, 0);
  std::vector<uint32_t> pos(cols);  // column -> its place in the processing order
  for (uint32_t i = 0; i < cols; i++) pos[order ? order[i] : i] = i;
  double x[kMaxGroup], wt[kMaxGroup];
  int q[kMaxGroup];
  // A group's scale from the values at(c) of its columns (c = column index).
  auto choose = [&](uint32_t g, const std::function<double(uint32_t)>& at) {
    const uint32_t c0 = g * group;
    const uint32_t m = std::min(group, cols - c0), m4 = (m + 3u) & ~3u;
    for (uint32_t j = 0; j < m4; j++) {
      x[j] = j < m ? at(c0 + j) : 0.0;
      wt[j] = j < m ? (importance ? importance[c0 + j] : 1.0) : 0.0;
    }
    hs[g] = choose_scale(x, wt, m4, q4, q);
  };
  std::vector<double> orig(cols);
  for (uint32_t j = 0; j < cols; j++) orig[j] = std::isfinite(w[j]) ? (double)w[j] : 0.0;
  // One GPTQ pass: levels into qall. choose_now: a group's scale is chosen when the sweep
  // first reaches one of its columns, from the weights as the earlier errors left them.
  auto pass = [&](bool choose_now) {
    for (uint32_t i = 0; i < cols; i++) r[i] = orig[order ? order[i] : i];
    std::vector<uint8_t> chosen(n, 0);
    for (uint32_t i = 0; i < cols; i++) {
      const uint32_t c = order ? order[i] : i;
      if (choose_now && !chosen[c / group]) {
        chosen[c / group] = 1;
        choose(c / group, [&](uint32_t cc) { return r[pos[cc]]; });
      }
      const double s = (double)half_to_float(hs[c / group]);
      int lv = 0;
      if (s != 0) {
        double v = r[i] / s;
        v = v < qmin ? qmin : (v > qmax ? qmax : v);
        lv = (int)Quantizer::round_q(v);
      }
      qall[c] = lv;
      // Spread the rounding error over the columns not yet rounded.
      const double* ui = u + (size_t)i * cols;
      const double e = (r[i] - s * (double)lv) / ui[i];
      for (uint32_t k = i + 1; k < cols; k++) r[k] -= e * ui[k];
    }
  };
  pass(true);
  if (gram != nullptr) {
    descend_levels(orig.data(), gram, cols, group, hs.data(), qmin, qmax, kDescentSweeps,
                   qall.data());
    double best = refit_scales(orig.data(), qall.data(), gram, cols, group, hs.data());
    // Alternate: levels for the refitted scales (a GPTQ pass, then descent), scales for the
    // new levels; a few rounds, keeping the best.
    std::vector<int> best_q(qall);
    std::vector<uint16_t> best_h(hs);
    for (int it = 0; it < kGptqRounds; it++) {
      pass(false);
      descend_levels(orig.data(), gram, cols, group, hs.data(), qmin, qmax, kDescentSweeps,
                     qall.data());
      const double f = refit_scales(orig.data(), qall.data(), gram, cols, group, hs.data());
      if (!(f < best)) break;
      best = f;
      best_q = qall;
      best_h = hs;
    }
    qall.swap(best_q);
    hs.swap(best_h);
    // The kept scales may be a refit after the last descent: end at levels no single move
    // improves (a descent step never raises the objective).
    descend_levels(orig.data(), gram, cols, group, hs.data(), qmin, qmax, kDescentSweeps,
                   qall.data());
  }
  for (uint32_t g = 0; g < n; g++) {
    const int* qg = &qall[(size_t)g * group];
    store_u16(out + 2 * g, hs[g]);
    if (q4) {
      uint8_t* b = groups + (size_t)g * (group / 2);
      for (uint32_t j = 0; j < group / 2; j++) {
        b[j] = (uint8_t)((uint32_t)(qg[j] + 8) | ((uint32_t)(qg[j + group / 2] + 8) << 4));
      }
    } else {
      uint8_t* b = groups + (size_t)g * group;
      for (uint32_t j = 0; j < group; j++) b[j] = (uint8_t)(int8_t)qg[j];
    }
  }
}

void encode_matrix_gptq(const float* w, uint32_t rows, uint32_t cols, DType type, uint32_t group,
                        const double* u, const uint32_t* order, const double* gram,
                        const double* importance, uint8_t* out, unsigned threads) {
  const size_t stride = row_stride_bytes(type, cols, group ? group : 1);
  auto run = [&](uint32_t r0, uint32_t r1) {
    for (uint32_t r = r0; r < r1; r++) {
      encode_row_gptq(w + (size_t)r * cols, cols, type, group, u, order, gram, importance,
                      out + (size_t)r * stride);
    }
  };
  if (threads == 0) threads = std::thread::hardware_concurrency();
  if (threads == 0) threads = 1;
  if (threads > 32) threads = 32;
  if (threads > rows) threads = rows;
  if (threads <= 1 || (uint64_t)rows * cols < 16384) {
    run(0, rows);
    return;
  }
  std::vector<std::thread> pool;
  const uint32_t per = (rows + threads - 1) / threads;
  for (unsigned t = 1; t < threads; t++) {
    const uint32_t r0 = std::min(rows, t * per), r1 = std::min(rows, (t + 1) * per);
    if (r0 >= r1) continue;
    try {
      pool.emplace_back(run, r0, r1);
    } catch (...) {
      run(r0, r1);
    }
  }
  run(0, std::min(rows, per));
  for (std::thread& th : pool) th.join();
}

void decode_row(const uint8_t* row, uint32_t cols, DType type, uint32_t group, float* out) {
  if (type == DType::kF32) {
    for (uint32_t j = 0; j < cols; j++) out[j] = f32_from_bits(load_u32(row + 4 * j));
    return;
  }
  if (type != DType::kQ8 && type != DType::kQ4) return;
  if (group == 0 || group % 2 != 0) return;
  const uint32_t n = (cols + group - 1) / group;
  const uint8_t* groups = row + ((n * 2u + 3u) & ~3u);
  for (uint32_t j = 0; j < cols; j++) {
    const uint32_t g = j / group, k = j % group;
    const float s = half_to_float(load_u16(row + 2 * g));
    int q;
    if (type == DType::kQ4) {
      const uint8_t b = groups[(size_t)g * (group / 2) + (k % (group / 2))];
      q = (int)(k < group / 2 ? (b & 0x0Fu) : (b >> 4)) - 8;
    } else {
      q = (int8_t)groups[(size_t)g * group + k];
    }
    out[j] = s * (float)q;
  }
}

}  // namespace llmwire
