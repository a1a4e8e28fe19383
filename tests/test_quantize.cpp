// Row encoding (docs/FORMAT.md "Row encoding") and the quality of the scale search.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "engine/fp16.h"
#include "engine/image_format.h"
#include "tools/quantize.h"

using namespace llmwire;

namespace {

uint32_t align4(uint32_t v) {
  return (v + 3) / 4 * 4;
}

// Independent decoder written from the FORMAT.md text: n fp16 scales (little-endian) padded
// to 4 bytes, then n groups; Q8 group = G int8; Q4 group = G/2 bytes, byte j = element j in
// the low nibble, element j + G/2 in the high nibble, each q + 8.
std::vector<float> ref_decode(const std::vector<uint8_t>& row, uint32_t cols, bool q4, uint32_t g,
                              std::vector<int>* levels = nullptr) {
  const uint32_t n = (cols + g - 1) / g;
  const uint32_t base = align4(2 * n);
  std::vector<float> out(n * g);
  if (levels) levels->assign(n * g, 0);
  for (uint32_t gi = 0; gi < n; gi++) {
    const uint16_t h = (uint16_t)(row[2 * gi] | (row[2 * gi + 1] << 8));
    const float s = half_to_float(h);
    for (uint32_t k = 0; k < g; k++) {
      int q;
      if (q4) {
        const uint8_t b = row[base + gi * (g / 2) + (k < g / 2 ? k : k - g / 2)];
        q = (k < g / 2 ? (b & 15) : (b >> 4)) - 8;
      } else {
        q = (int8_t)row[base + gi * g + k];
      }
      out[gi * g + k] = s * (float)q;
      if (levels) (*levels)[gi * g + k] = q;
    }
  }
  return out;
}

// Squared error of quantizing w[0..m) with fp16 scale bits h to levels in [lo, hi].
double group_error(const float* w, uint32_t m, uint16_t h, int lo, int hi) {
  const double s = half_to_float(h);
  if (s == 0 || !std::isfinite(s)) {
    double e = 0;
    for (uint32_t j = 0; j < m; j++) e += (double)w[j] * w[j];
    return e;
  }
  double e = 0;
  for (uint32_t j = 0; j < m; j++) {
    double q = std::nearbyint((double)w[j] / s);
    q = std::min<double>(hi, std::max<double>(lo, q));
    const double d = (double)w[j] - (double)(float)(s * q);
    e += d * d;
  }
  return e;
}

double decoded_error(const float* w, const float* dq, uint32_t m) {
  double e = 0;
  for (uint32_t j = 0; j < m; j++) {
    const double d = (double)w[j] - (double)dq[j];
    e += d * d;
  }
  return e;
}

std::vector<float> gaussian(size_t n, uint32_t seed, float sd = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, sd);
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng);
  return v;
}

}  // namespace

TEST(Quantize, LayoutMatchesIndependentDecoder) {
  for (bool q4 : {true, false}) {
    const DType dt = q4 ? DType::kQ4 : DType::kQ8;
    for (uint32_t g : {8u, 32u, 64u, 256u}) {
      for (uint32_t cols : {1u, 7u, 32u, 100u, 172u, 300u}) {
        const uint32_t n = (cols + g - 1) / g;
        const uint32_t stride = align4(2 * n) + n * (q4 ? g / 2 : g);
        ASSERT_EQ(stride, row_stride_bytes(dt, cols, g));
        const std::vector<float> w = gaussian(cols, cols * 31 + g, 0.5f);
        std::vector<uint8_t> row(stride, 0xAB);  // garbage: every byte must be written
        encode_row(w.data(), cols, dt, g, row.data());
        // Scale padding bytes are zero.
        for (uint32_t b = 2 * n; b < align4(2 * n); b++) EXPECT_EQ(row[b], 0) << b;
        std::vector<int> lv;
        const std::vector<float> ref = ref_decode(row, cols, q4, g, &lv);
        std::vector<float> dec(cols);
        decode_row(row.data(), cols, dt, g, dec.data());
        for (uint32_t j = 0; j < cols; j++) ASSERT_EQ(ref[j], dec[j]) << j;
        for (uint32_t j = 0; j < n * g; j++) {
          EXPECT_GE(lv[j], q4 ? -8 : -127);
          EXPECT_LE(lv[j], q4 ? 7 : 127);
          if (j >= cols) {
            EXPECT_EQ(lv[j], 0) << "padding column " << j << " must be q = 0";
          }
        }
        if (q4 && cols % g != 0) {
          // Padding nibbles are stored as 8 (q = 0).
          const uint32_t last = n - 1;
          for (uint32_t k = cols - last * g; k < g; k++) {
            const uint8_t b = row[align4(2 * n) + last * (g / 2) + (k % (g / 2))];
            EXPECT_EQ(k < g / 2 ? (b & 15) : (b >> 4), 8);
          }
        }
      }
    }
  }
}

TEST(Quantize, RoundTripErrorBounded) {
  for (bool q4 : {true, false}) {
    const DType dt = q4 ? DType::kQ4 : DType::kQ8;
    const uint32_t g = 32, cols = 288, rows = 64;
    double err = 0, energy = 0;
    for (uint32_t r = 0; r < rows; r++) {
      const std::vector<float> w = gaussian(cols, 1000 + r, 0.02f * (r + 1));
      std::vector<uint8_t> row(row_stride_bytes(dt, cols, g));
      encode_row(w.data(), cols, dt, g, row.data());
      std::vector<float> dec(cols);
      decode_row(row.data(), cols, dt, g, dec.data());
      for (uint32_t gi = 0; gi < cols / g; gi++) {
        float amax = 0;
        for (uint32_t k = 0; k < g; k++) amax = std::max(amax, std::fabs(w[gi * g + k]));
        for (uint32_t k = 0; k < g; k++) {
          const uint32_t j = gi * g + k;
          // Worst case of a sensible scale: half a step of amax/5.5 (q4) or amax/112 (q8).
          EXPECT_LE(std::fabs(w[j] - dec[j]), amax * (q4 ? 0.16f : 0.0095f)) << j;
        }
      }
      err += decoded_error(w.data(), dec.data(), cols);
      for (float v : w) energy += (double)v * v;
    }
    // Uniform rounding noise with step ~amax/7.5 (q4) or ~amax/127 (q8), amax ~2.1 sigma for a
    // Gaussian group of 32: relative MSE ~ step^2 / 12 / sigma^2.
    EXPECT_LT(err / energy, q4 ? 0.012 : 5e-5) << (q4 ? "q4" : "q8");
  }
}

TEST(Quantize, NeverWorseThanAbsmaxAndBetterInAggregate) {
  const uint32_t g = 32, cols = 256, rows = 200;
  double mine = 0, base7 = 0, base8 = 0, base_best = 0;
  for (uint32_t r = 0; r < rows; r++) {
    const std::vector<float> w = gaussian(cols, 77 + r, 0.05f);
    std::vector<uint8_t> row(row_stride_bytes(DType::kQ4, cols, g));
    encode_row(w.data(), cols, DType::kQ4, g, row.data());
    std::vector<float> dec(cols);
    decode_row(row.data(), cols, DType::kQ4, g, dec.data());
    for (uint32_t gi = 0; gi < cols / g; gi++) {
      const float* x = w.data() + gi * g;
      float amax = 0, mm = 0;
      for (uint32_t k = 0; k < g; k++) {
        if (std::fabs(x[k]) > amax) {
          amax = std::fabs(x[k]);
          mm = x[k];
        }
      }
      const double e7 = group_error(x, g, float_to_half(amax / 7.0f), -8, 7);
      const double e8 = group_error(x, g, float_to_half(mm / -8.0f), -8, 7);
      const double e = decoded_error(x, dec.data() + gi * g, g);
      EXPECT_LE(e, std::min(e7, e8) * (1 + 1e-9)) << "row " << r << " group " << gi;
      mine += e;
      base7 += e7;
      base8 += e8;
      base_best += std::min(e7, e8);
    }
  }
  EXPECT_LT(mine, base_best);
  // An MSE search over scales beats fixed absmax scaling by a clear margin on Gaussian data.
  EXPECT_LT(mine, 0.95 * std::min(base7, base8));
  std::printf(
      "q4 squared error: mine %.6g  absmax/7 %.6g  maxmag/-8 %.6g  (%.1f%% below the "
      "better baseline)\n",
      mine, base7, base8, 100.0 * (1 - mine / std::min(base7, base8)));
}

// Exhaustive search over every fp16 scale in a wide window finds the true optimum of each
// group; the encoder should be at (or extremely close to) it.
TEST(Quantize, CloseToExhaustiveOptimum) {
  const uint32_t g = 32, cols = 64, rows = 40;
  double mine = 0, best_total = 0;
  for (uint32_t r = 0; r < rows; r++) {
    const std::vector<float> w = gaussian(cols, 5000 + r, 0.1f);
    std::vector<uint8_t> row(row_stride_bytes(DType::kQ4, cols, g));
    encode_row(w.data(), cols, DType::kQ4, g, row.data());
    std::vector<float> dec(cols);
    decode_row(row.data(), cols, DType::kQ4, g, dec.data());
    for (uint32_t gi = 0; gi < cols / g; gi++) {
      const float* x = w.data() + gi * g;
      float amax = 0;
      for (uint32_t k = 0; k < g; k++) amax = std::max(amax, std::fabs(x[k]));
      const uint16_t lo = float_to_half(amax / 12.0f), hi = float_to_half(amax / 4.0f);
      double best = 1e300;
      for (uint16_t h = lo; h <= hi; h++) {
        best = std::min(best, group_error(x, g, h, -8, 7));
        best = std::min(best, group_error(x, g, (uint16_t)(h | 0x8000u), -8, 7));
      }
      const double e = decoded_error(x, dec.data() + gi * g, g);
      EXPECT_LE(e, best * 1.02) << "row " << r << " group " << gi;
      mine += e;
      best_total += best;
    }
  }
  EXPECT_LE(mine, best_total * 1.005);
  std::printf("q4 squared error: mine %.6g, exhaustive optimum %.6g (+%.3f%%)\n", mine, best_total,
              100.0 * (mine / best_total - 1));
}

TEST(Quantize, Q8NeverWorseThanAbsmax) {
  const uint32_t g = 64, cols = 256;
  for (uint32_t r = 0; r < 50; r++) {
    const std::vector<float> w = gaussian(cols, 900 + r, 0.3f);
    std::vector<uint8_t> row(row_stride_bytes(DType::kQ8, cols, g));
    encode_row(w.data(), cols, DType::kQ8, g, row.data());
    std::vector<float> dec(cols);
    decode_row(row.data(), cols, DType::kQ8, g, dec.data());
    for (uint32_t gi = 0; gi < cols / g; gi++) {
      const float* x = w.data() + gi * g;
      float amax = 0;
      for (uint32_t k = 0; k < g; k++) amax = std::max(amax, std::fabs(x[k]));
      const double eb = group_error(x, g, float_to_half(amax / 127.0f), -127, 127);
      EXPECT_LE(decoded_error(x, dec.data() + gi * g, g), eb * (1 + 1e-9));
    }
  }
}

TEST(Quantize, ZerosTinyHugeAndNonFinite) {
  const uint32_t g = 32, cols = 40;
  for (DType dt : {DType::kQ4, DType::kQ8}) {
    std::vector<uint8_t> row(row_stride_bytes(dt, cols, g));
    std::vector<float> dec(cols);
    std::vector<float> w(cols, 0.0f);
    encode_row(w.data(), cols, dt, g, row.data());
    decode_row(row.data(), cols, dt, g, dec.data());
    for (float v : dec) EXPECT_EQ(v, 0.0f);
    // Huge values saturate the fp16 scale but stay finite.
    for (uint32_t j = 0; j < cols; j++) w[j] = (j % 2 ? 1e9f : -3e8f);
    encode_row(w.data(), cols, dt, g, row.data());
    decode_row(row.data(), cols, dt, g, dec.data());
    for (float v : dec) EXPECT_TRUE(std::isfinite(v));
    // Tiny values (below fp16's range) give zero or tiny values, never garbage.
    for (uint32_t j = 0; j < cols; j++) w[j] = 1e-12f * (float)j;
    encode_row(w.data(), cols, dt, g, row.data());
    decode_row(row.data(), cols, dt, g, dec.data());
    for (float v : dec) EXPECT_LE(std::fabs(v), 1e-6f);
    // NaN / Inf do not crash and do not poison the other values of the group.
    for (uint32_t j = 0; j < cols; j++) w[j] = 0.01f * (float)j;
    w[3] = NAN;
    w[5] = INFINITY;
    encode_row(w.data(), cols, dt, g, row.data());
    decode_row(row.data(), cols, dt, g, dec.data());
    for (uint32_t j = 0; j < cols; j++) EXPECT_TRUE(std::isfinite(dec[j]));
    EXPECT_NEAR(dec[31], 0.31f, 0.31f * 0.1f);
  }
}

TEST(Quantize, F32RoundTripExact) {
  const std::vector<float> w = gaussian(37, 3);
  std::vector<uint8_t> row(row_stride_bytes(DType::kF32, 37, 32));
  ASSERT_EQ(row.size(), 37u * 4);
  encode_row(w.data(), 37, DType::kF32, 32, row.data());
  std::vector<float> dec(37);
  decode_row(row.data(), 37, DType::kF32, 32, dec.data());
  for (int j = 0; j < 37; j++) {
    uint32_t u = (uint32_t)row[4 * j] | ((uint32_t)row[4 * j + 1] << 8) |
                 ((uint32_t)row[4 * j + 2] << 16) | ((uint32_t)row[4 * j + 3] << 24);
    EXPECT_EQ(u, bits_from_f32(w[j]));
    EXPECT_EQ(dec[j], w[j]);
  }
}

TEST(Quantize, MatrixEncodingIndependentOfThreads) {
  const uint32_t rows = 701, cols = 100, g = 32;  // big enough to use threads
  const std::vector<float> w = gaussian((size_t)rows * cols, 11, 0.2f);
  for (DType dt : {DType::kQ4, DType::kQ8}) {
    const size_t stride = row_stride_bytes(dt, cols, g);
    std::vector<uint8_t> serial(rows * stride);
    for (uint32_t r = 0; r < rows; r++) {
      encode_row(w.data() + (size_t)r * cols, cols, dt, g, serial.data() + r * stride);
    }
    for (unsigned threads : {1u, 2u, 3u, 8u}) {
      std::vector<uint8_t> m(rows * stride, 0x55);
      encode_matrix(w.data(), rows, cols, dt, g, m.data(), threads);
      EXPECT_EQ(0, std::memcmp(m.data(), serial.data(), m.size())) << threads << " threads";
    }
  }
}
