// IEEE binary16 <-> binary32 conversion in plain integer code (no platform intrinsics), so
// every platform produces the same bits. float -> half rounds to nearest even.
#pragma once

#include <stdint.h>
#include <string.h>

namespace llmwire {

// __builtin_memcpy: a bare-metal build (-ffreestanding, so -fno-builtin) would otherwise call
// memcpy for every cast (measured: four calls per Q4 group on the emulated rv32 board).
inline float f32_from_bits(uint32_t u) {
  float f;
  __builtin_memcpy(&f, &u, 4);
  return f;
}
inline uint32_t bits_from_f32(float f) {
  uint32_t u;
  __builtin_memcpy(&u, &f, 4);
  return u;
}

inline float half_to_float(uint16_t h) {
  const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1Fu;
  uint32_t mant = h & 0x3FFu;
  if (exp == 0x1F) return f32_from_bits(sign | 0x7F800000u | (mant << 13));  // inf/nan
  if (exp == 0) {
    if (mant == 0) return f32_from_bits(sign);
    // subnormal: normalise
    exp = 1;
    while ((mant & 0x400u) == 0) {
      mant <<= 1;
      exp--;
    }
    mant &= 0x3FFu;
    return f32_from_bits(sign | ((exp + 112u) << 23) | (mant << 13));
  }
  return f32_from_bits(sign | ((exp + 112u) << 23) | (mant << 13));
}

// The same conversion without data-dependent branches (the kernels' hot path; half_to_float
// keeps the plain statement). Normal: rebias the exponent. Zero/subnormal: float(mantissa) *
// 2^-24, exact. Inf/NaN: all-ones exponent. The three are selected with masks.
inline float half_to_float_fast(uint16_t h) {
  const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  const uint32_t e = h & 0x7C00u;
  const uint32_t normal = ((uint32_t)(h & 0x7FFFu) << 13) + (112u << 23);
  const uint32_t special = 0x7F800000u | ((uint32_t)(h & 0x3FFu) << 13);
  const uint32_t sub = bits_from_f32((float)(h & 0x3FFu) * 5.9604644775390625e-8f);  // 2^-24
  const uint32_t is_zero_exp = (uint32_t)0 - (uint32_t)(e == 0);
  const uint32_t is_max_exp = (uint32_t)0 - (uint32_t)(e == 0x7C00u);
  uint32_t bits = (normal & ~is_zero_exp) | (sub & is_zero_exp);
  bits = (bits & ~is_max_exp) | (special & is_max_exp);
  return f32_from_bits(sign | bits);
}

// The same conversion by a 32-entry table on the exponent, exact for every half and without
// branches (scalar32's scales: ~10 instructions fewer than half_to_float_fast on rv32):
// normal: rebias (+112 << 23); zero/subnormal: exponent 113 then minus 2^-14 (exact, no
// subnormal float ever formed); inf/NaN: rebias like a normal, then force the exponent bits.
struct HalfExp {
  uint32_t add, force;
  float sub;
};
constexpr HalfExp half_exp_entry(uint32_t e) {
  return e == 0 ? HalfExp{113u << 23, 0, 6.103515625e-05f}
                : HalfExp{112u << 23, e == 31 ? 0x7F800000u : 0u, 0.0f};
}
inline constexpr HalfExp kHalfExp[32] = {
    half_exp_entry(0),  half_exp_entry(1),  half_exp_entry(2),  half_exp_entry(3),
    half_exp_entry(4),  half_exp_entry(5),  half_exp_entry(6),  half_exp_entry(7),
    half_exp_entry(8),  half_exp_entry(9),  half_exp_entry(10), half_exp_entry(11),
    half_exp_entry(12), half_exp_entry(13), half_exp_entry(14), half_exp_entry(15),
    half_exp_entry(16), half_exp_entry(17), half_exp_entry(18), half_exp_entry(19),
    half_exp_entry(20), half_exp_entry(21), half_exp_entry(22), half_exp_entry(23),
    half_exp_entry(24), half_exp_entry(25), half_exp_entry(26), half_exp_entry(27),
    half_exp_entry(28), half_exp_entry(29), half_exp_entry(30), half_exp_entry(31)};
inline float half_to_float_table(uint32_t h) {
  const HalfExp& t = kHalfExp[(h >> 10) & 31u];
  const float f = f32_from_bits(((h & 0x7FFFu) << 13) + t.add) - t.sub;
  return f32_from_bits(bits_from_f32(f) | t.force | ((h & 0x8000u) << 16));
}
inline uint16_t float_to_half(float f) {
  const uint32_t x = bits_from_f32(f);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t absx = x & 0x7FFFFFFFu;
  if (absx >= 0x7F800000u) return (uint16_t)(sign | 0x7C00u | (absx > 0x7F800000u ? 0x200u : 0));
  if (absx >= 0x477FF000u) return (uint16_t)(sign | 0x7C00u);  // rounds to >= 65520: inf
  if (absx < 0x38800000u) {                                    // below 2^-14: subnormal half
    if (absx < 0x33000000u) return (uint16_t)sign;             // below 2^-25: zero
    const uint32_t e = absx >> 23;
    const uint32_t m = (absx & 0x7FFFFFu) | 0x800000u;
    const uint32_t shift = 126u - e;  // 14..24
    uint32_t r = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1u);
    const uint32_t half = 1u << (shift - 1u);
    if (rem > half || (rem == half && (r & 1u))) r++;
    return (uint16_t)(sign | r);
  }
  uint32_t r = ((absx >> 13) - (112u << 10));
  const uint32_t rem = absx & 0x1FFFu;
  if (rem > 0x1000u || (rem == 0x1000u && (r & 1u))) r++;
  return (uint16_t)(sign | r);
}

}  // namespace llmwire
