// The engine's own elementary functions: results must not depend on a platform's libm
// (determinism contract). Plain IEEE float32 arithmetic in a fixed order; only sqrt and
// division (correctly rounded everywhere) come from the hardware.
#pragma once

namespace llmwire {

// Round to nearest, ties to even (the default IEEE mode), for |x| < 2^22; exact otherwise.
inline float rint_f32(float x) {     // inline: the activation quantizer calls it per element
  const float kMagic = 12582912.0f;  // 1.5 * 2^23: adding it drops the fraction bits
  const float ax = x < 0 ? -x : x;
  if (!(ax < 4194304.0f)) return x;  // already an integer (or NaN)
  float t = x + kMagic;
  return t - kMagic;
}
// e^x within 2 ulp; 0 for x < -104, +inf for x > 88.73.
float exp_f32(float x);
// Natural logarithm for x > 0 (within 2 ulp); -inf for 0, NaN for negative.
float log_f32(float x);
// sin and cos together, accurate to a few ulp for |x| < 8192 (RoPE angles).
void sincos_f32(float x, float* s, float* c);
// Correctly rounded square root.
float sqrt_f32(float x);

}  // namespace llmwire
