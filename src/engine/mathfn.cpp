#include "engine/mathfn.h"

#include "engine/fp16.h"

namespace llmwire {

static float scale_by_pow2(float v, int n) {
  // v * 2^n for n in [-252, 254] without libm ldexp.
  while (n > 127) {
    v *= f32_from_bits(254u << 23);  // 2^127
    n -= 127;
  }
  while (n < -126) {
    v *= f32_from_bits(1u << 23);  // 2^-126
    n += 126;
  }
  return v * f32_from_bits((uint32_t)(n + 127) << 23);
}

float exp_f32(float x) {
  if (x != x) return x;
  if (x > 88.7228394f) return f32_from_bits(0x7F800000u);
  if (x < -103.972f) return 0.0f;
  // x = k*ln2 + r, |r| <= ln2/2. ln2 split so that k*kLn2Hi is exact for |k| < 2^9.
  const float kf = rint_f32(x * 1.44269504088896341f);
  const float kLn2Hi = 0.693145751953125f;
  const float kLn2Lo = 1.42860682030941723212e-6f;
  float r = x - kf * kLn2Hi;
  r = r - kf * kLn2Lo;
  // e^r by its Taylor series to degree 7 (remainder < 3e-9 relative on |r| <= 0.347).
  float p = 1.98412698e-4f;
  p = p * r + 1.38888889e-3f;
  p = p * r + 8.33333333e-3f;
  p = p * r + 4.16666667e-2f;
  p = p * r + 1.66666667e-1f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  return scale_by_pow2(p, (int)kf);
}

float log_f32(float x) {
  if (x != x || x < 0) return f32_from_bits(0x7FC00000u);
  if (x == 0) return f32_from_bits(0xFF800000u);
  uint32_t u = bits_from_f32(x);
  if (u >= 0x7F800000u) return x;
  int e = 0;
  if (u < 0x00800000u) {  // subnormal: normalise
    x *= 16777216.0f;
    u = bits_from_f32(x);
    e = -24;
  }
  e += (int)(u >> 23) - 127;
  float m = f32_from_bits((u & 0x007FFFFFu) | 0x3F800000u);  // [1, 2)
  if (m > 1.41421356f) {
    m *= 0.5f;
    e++;
  }
  // log(m) = 2 atanh(s), s = (m-1)/(m+1), |s| <= 0.1716
  const float f = m - 1.0f;
  const float s = f / (2.0f + f);
  const float s2 = s * s;
  float p = 1.0f / 11.0f;
  p = p * s2 + 1.0f / 9.0f;
  p = p * s2 + 1.0f / 7.0f;
  p = p * s2 + 1.0f / 5.0f;
  p = p * s2 + 1.0f / 3.0f;
  const float lm = (2.0f * s) + (2.0f * s) * (s2 * p);
  const float ef = (float)e;
  return ef * 0.693145751953125f + (ef * 1.42860682030941723212e-6f + lm);
}

void sincos_f32(float x, float* s, float* c) {
  // Cody-Waite reduction by pi/2 with a three-part constant (cephes), then minimax
  // polynomials on [-pi/4, pi/4].
  const float kf = rint_f32(x * 0.636619772367581343f);
  float r = x - kf * 1.5703125f;
  r = r - kf * 4.837512969970703125e-4f;
  r = r - kf * 7.54978995489188216e-8f;
  const float r2 = r * r;
  float ps = -1.9515295891e-4f;
  ps = ps * r2 + 8.3321608736e-3f;
  ps = ps * r2 + -1.6666654611e-1f;
  const float sr = r + (r * r2) * ps;
  float pc = 2.443315711809948e-5f;
  pc = pc * r2 + -1.388731625493765e-3f;
  pc = pc * r2 + 4.166664568298827e-2f;
  const float cr = (1.0f - 0.5f * r2) + (r2 * r2) * pc;
  const int q = ((int)kf) & 3;
  switch (q) {
    case 0:
      *s = sr;
      *c = cr;
      break;
    case 1:
      *s = cr;
      *c = -sr;
      break;
    case 2:
      *s = -sr;
      *c = -cr;
      break;
    default:
      *s = -cr;
      *c = sr;
      break;
  }
}

float sqrt_f32(float x) {
  return __builtin_sqrtf(x);
}

}  // namespace llmwire
