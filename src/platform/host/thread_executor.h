// Executor on host threads: worker 0 is the calling thread; the others are a persistent pool.
// A job is published by bumping an atomic generation; idle workers spin on it for a short
// while (matmuls come every few microseconds during a token) and only then block on a
// condition variable, so a token costs a handful of context switches, not one per matmul.
// The host's stand-in for the ESP32-S3's second core (task notification there).
#pragma once

#include <atomic>
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
  // The job: written before generation_ is bumped (release), read after it is seen (acquire).
  void (*fn_)(void*, uint32_t, uint32_t) = nullptr;
  void* ctx_ = nullptr;
  std::atomic<uint32_t> generation_{0};
  std::atomic<uint32_t> pending_{0};   // helpers still running the current job
  std::atomic<uint32_t> sleepers_{0};  // helpers blocked (or about to block) on start_cv_
  std::atomic<bool> caller_sleeping_{false};
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::condition_variable start_cv_, done_cv_;
};

}  // namespace llmwire
