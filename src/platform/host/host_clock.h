// Clock on the host's monotonic steady_clock.
#pragma once

#include <chrono>

#include "pipeline/clock.h"

namespace llmwire {

class HostClock final : public Clock {
 public:
  uint64_t now_us() override {
    return (uint64_t)std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
};

}  // namespace llmwire
