// Runs one piece of work on several cores. The engine splits matmul rows and attention heads
// by worker index; the platform decides what a worker is (a thread, the ESP32-S3's other
// core, or nothing at all on a single-core MCU).
#pragma once

#include <stdint.h>

namespace llmwire {

class Executor {
 public:
  virtual uint32_t workers() const = 0;
  // Calls fn(ctx, w, workers()) for every w in [0, workers()) and returns when all are done.
  virtual void run(void (*fn)(void* ctx, uint32_t worker, uint32_t workers), void* ctx) = 0;

 protected:
  ~Executor() = default;  // not deleted through the interface: no operator delete on MCUs
};

// Everything on the calling core.
class SerialExecutor final : public Executor {
 public:
  uint32_t workers() const override { return 1; }
  void run(void (*fn)(void*, uint32_t, uint32_t), void* ctx) override { fn(ctx, 0, 1); }
};

// The share [begin, end) of n items that worker w of `workers` takes.
inline void split_range(uint32_t n, uint32_t w, uint32_t workers, uint32_t* begin, uint32_t* end) {
  *begin = (uint32_t)((uint64_t)n * w / workers);
  *end = (uint32_t)((uint64_t)n * (w + 1) / workers);
}

}  // namespace llmwire
