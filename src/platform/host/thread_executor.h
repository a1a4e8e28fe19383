// Executor on host threads: worker 0 is the calling thread, the others wait on a condition
// variable for each job (the host's stand-in for the ESP32-S3's second core).
#pragma once

#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "engine/executor.h"

namespace llmwire {

class ThreadExecutor final : public Executor {
 public:
  explicit ThreadExecutor(uint32_t workers);
  ~ThreadExecutor();
  uint32_t workers() const override { return workers_; }
  void run(void (*fn)(void*, uint32_t, uint32_t), void* ctx) override;

 private:
  void loop(uint32_t index);

  uint32_t workers_;
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::condition_variable start_cv_, done_cv_;
  void (*fn_)(void*, uint32_t, uint32_t) = nullptr;
  void* ctx_ = nullptr;
  uint64_t generation_ = 0;
  uint32_t pending_ = 0;
  bool stop_ = false;
};

}  // namespace llmwire
