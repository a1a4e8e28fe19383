// Option checks shared by the commands, so `generate`, `sim`, `stage` and `demo` accept and
// refuse the same values with the same words.
#pragma once

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "engine/image_format.h"

namespace llmwire::cli {

// --kv: the KV cache element types every command accepts, and the type each name means.
inline CLI::IsMember kv_names() {
  return CLI::IsMember({"f32", "f16", "i8"});
}
inline KvType kv_from_name(const std::string& name) {
  return name == "f16" ? KvType::kF16 : (name == "i8" ? KvType::kI8 : KvType::kF32);
}

// A finite number in [lo, hi] (CLI::Range lets NaN through: every comparison with it is false).
inline CLI::Validator finite_range(double lo, double hi) {
  char desc[64];
  std::snprintf(desc, sizeof desc, "NUMBER in [%g, %g]", lo, hi);
  return CLI::Validator(
      [lo, hi](std::string& v) -> std::string {
        char* end = nullptr;
        const double x = std::strtod(v.c_str(), &end);
        if (v.empty() || *end != 0 || !std::isfinite(x) || x < lo || x > hi) {
          char buf[96];
          std::snprintf(buf, sizeof buf, "must be a number from %g to %g", lo, hi);
          return "'" + v + "' " + buf;
        }
        return "";
      },
      desc);
}

// Sampling seed: 1 .. 2^64-1 (0 is refused: xorshift would stay at 0).
inline CLI::Validator seed_range() {
  return CLI::Validator(
      [](std::string& v) -> std::string {
        const bool digits =
            !v.empty() && v.size() <= 20 && v.find_first_not_of("0123456789") == std::string::npos;
        errno = 0;
        const unsigned long long x = digits ? std::strtoull(v.c_str(), nullptr, 10) : 0;
        if (!digits || errno == ERANGE || x == 0) {
          return "'" + v + "' is not a valid seed: give a whole number from 1 to " +
                 std::to_string(UINT64_MAX);
        }
        return "";
      },
      "SEED in [1, 2^64-1]");
}

// Tokens to generate: 1 .. 2^20 (the longest context any image can have).
constexpr uint32_t kMaxSteps = 1u << 20;

}  // namespace llmwire::cli
