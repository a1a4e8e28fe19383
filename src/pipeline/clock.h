// Monotonic time from the platform (esp_timer on the board, steady_clock on the host).
#pragma once

#include <stdint.h>

namespace llmwire {

class Clock {
 public:
  virtual uint64_t now_us() = 0;
  uint32_t now_ms() { return (uint32_t)(now_us() / 1000); }

 protected:
  ~Clock() = default;  // not deleted through the interface: no operator delete on MCUs
};

}  // namespace llmwire
