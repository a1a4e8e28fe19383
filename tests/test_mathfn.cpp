// Own elementary functions against the host's double-precision libm, fp16 and CRC-32C
// against their standard definitions.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "engine/crc32c.h"
#include "engine/fp16.h"
#include "engine/mathfn.h"

using namespace llmwire;

static double ulp_of(float x) {
  return std::nextafter(std::fabs(x), INFINITY) - std::fabs(x);
}

TEST(MathFn, ExpWithinTwoUlp) {
  for (float x = -87.0f; x < 88.0f; x += 0.01737f) {
    const double want = std::exp((double)x);
    const float got = exp_f32(x);
    ASSERT_LE(std::fabs(got - want), 2 * ulp_of((float)want)) << "x=" << x;
  }
  EXPECT_EQ(exp_f32(0.0f), 1.0f);
  EXPECT_EQ(exp_f32(-200.0f), 0.0f);
  EXPECT_TRUE(std::isinf(exp_f32(100.0f)));
}

TEST(MathFn, LogWithinTwoUlp) {
  for (float x = 1e-30f; x < 1e30f; x *= 1.0473f) {
    const double want = std::log((double)x);
    ASSERT_LE(std::fabs(log_f32(x) - want), 2 * ulp_of((float)want) + 1e-7) << "x=" << x;
  }
  EXPECT_NEAR(log_f32(10000.0f), 9.210340371976184, 2e-6);
}

TEST(MathFn, SinCosAccurateForRopeAngles) {
  double worst = 0;
  for (float x = -1100.0f; x < 1100.0f; x += 0.3131f) {
    float s, c;
    sincos_f32(x, &s, &c);
    worst = std::fmax(worst, std::fabs(s - std::sin((double)x)));
    worst = std::fmax(worst, std::fabs(c - std::cos((double)x)));
  }
  EXPECT_LT(worst, 4e-7);
}

TEST(MathFn, RintTiesToEven) {
  EXPECT_EQ(rint_f32(0.5f), 0.0f);
  EXPECT_EQ(rint_f32(1.5f), 2.0f);
  EXPECT_EQ(rint_f32(2.5f), 2.0f);
  EXPECT_EQ(rint_f32(-2.5f), -2.0f);
  EXPECT_EQ(rint_f32(-3.7f), -4.0f);
  EXPECT_EQ(rint_f32(126.49f), 126.0f);
  for (float x = -300.0f; x < 300.0f; x += 0.173f) ASSERT_EQ(rint_f32(x), std::nearbyint(x));
}

TEST(Fp16, KnownEncodings) {
  EXPECT_EQ(float_to_half(1.0f), 0x3C00);
  EXPECT_EQ(float_to_half(-2.0f), 0xC000);
  EXPECT_EQ(float_to_half(65504.0f), 0x7BFF);
  EXPECT_EQ(float_to_half(1e6f), 0x7C00);
  EXPECT_EQ(float_to_half(5.9604645e-8f), 0x0001);  // smallest subnormal
  EXPECT_EQ(half_to_float(0x3555), 0.333251953125f);
  EXPECT_EQ(half_to_float(0x0001), 5.9604645e-8f);
}

TEST(Fp16, RoundTripAndNearestEven) {
  // Every finite half converts to float and back unchanged.
  for (uint32_t h = 0; h < 0x10000; h++) {
    if ((h & 0x7C00) == 0x7C00) continue;
    ASSERT_EQ(float_to_half(half_to_float((uint16_t)h)), h) << h;
  }
  // Halfway between 1.0 and the next half (1 + 2^-10) rounds to even (1.0).
  EXPECT_EQ(float_to_half(1.0f + 1.0f / 2048.0f), 0x3C00);
  EXPECT_EQ(float_to_half(1.0f + 3.0f / 2048.0f), 0x3C02);
}

TEST(Crc32c, StandardCheckValue) {
  const char* s = "123456789";
  EXPECT_EQ(crc32c(s, 9), 0xE3069283u);
  // Incremental equals one-shot.
  EXPECT_EQ(crc32c_update(crc32c(s, 4), s + 4, 5), 0xE3069283u);
}
