#include "platform/host/thread_executor.h"

namespace llmwire {

ThreadExecutor::ThreadExecutor(uint32_t workers) : workers_(workers ? workers : 1) {
  for (uint32_t i = 1; i < workers_; i++) threads_.emplace_back([this, i] { loop(i); });
}

ThreadExecutor::~ThreadExecutor() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  start_cv_.notify_all();
  for (auto& t : threads_) t.join();
}

void ThreadExecutor::run(void (*fn)(void*, uint32_t, uint32_t), void* ctx) {
  if (workers_ == 1) {
    fn(ctx, 0, 1);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    fn_ = fn;
    ctx_ = ctx;
    pending_ = workers_ - 1;
    generation_++;
  }
  start_cv_.notify_all();
  fn(ctx, 0, workers_);
  std::unique_lock<std::mutex> lock(mu_);
  done_cv_.wait(lock, [this] { return pending_ == 0; });
}

void ThreadExecutor::loop(uint32_t index) {
  uint64_t seen = 0;
  for (;;) {
    void (*fn)(void*, uint32_t, uint32_t);
    void* ctx;
    {
      std::unique_lock<std::mutex> lock(mu_);
      start_cv_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      fn = fn_;
      ctx = ctx_;
    }
    fn(ctx, index, workers_);
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (--pending_ == 0) done_cv_.notify_one();
    }
  }
}

}  // namespace llmwire
