#include "platform/host/thread_executor.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define LLMWIRE_CPU_RELAX() _mm_pause()
#else
#define LLMWIRE_CPU_RELAX() \
  do {                      \
  } while (0)
#endif

namespace llmwire {
namespace {
// Spin rounds before blocking: a pause is ~75 ns on this host, so ~20 us, longer than the
// gaps between a token's matmuls. Measured (bench, 2 shared cores at load ~15): 256 rounds
// beat 0, 64 and 4096; long spins are ruinous on a busy machine, where a spinning thread
// burns the slice its partner needs and loses the scheduler's wake-up preference.
constexpr uint32_t kSpinRounds = 256;
}  // namespace

ThreadExecutor::ThreadExecutor(uint32_t workers) : workers_(workers ? workers : 1) {
  for (uint32_t i = 1; i < workers_; i++) threads_.emplace_back([this, i] { loop(i); });
}

ThreadExecutor::~ThreadExecutor() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_.store(true);
  }
  start_cv_.notify_all();
  for (auto& t : threads_) t.join();
}

void ThreadExecutor::run(void (*fn)(void*, uint32_t, uint32_t), void* ctx) {
  if (workers_ == 1) {
    fn(ctx, 0, 1);
    return;
  }
  fn_ = fn;
  ctx_ = ctx;
  pending_.store(workers_ - 1, std::memory_order_relaxed);
  generation_.fetch_add(1, std::memory_order_seq_cst);
  // A helper that registered as a sleeper before seeing the new generation is woken here; one
  // that registers later sees the generation itself (both sides are seq_cst).
  if (sleepers_.load(std::memory_order_seq_cst) != 0) {
    std::lock_guard<std::mutex> lock(mu_);
    start_cv_.notify_all();
  }
  fn(ctx, 0, workers_);
  for (uint32_t spin = 0; pending_.load(std::memory_order_acquire) != 0; spin++) {
    if (spin < kSpinRounds) {
      LLMWIRE_CPU_RELAX();
      continue;
    }
    std::unique_lock<std::mutex> lock(mu_);
    caller_sleeping_.store(true, std::memory_order_seq_cst);
    done_cv_.wait(lock, [this] { return pending_.load(std::memory_order_seq_cst) == 0; });
    caller_sleeping_.store(false, std::memory_order_relaxed);
  }
}

void ThreadExecutor::loop(uint32_t index) {
  uint32_t seen = 0;
  for (;;) {
    uint32_t gen = generation_.load(std::memory_order_acquire);
    for (uint32_t spin = 0; gen == seen && spin < kSpinRounds; spin++) {
      LLMWIRE_CPU_RELAX();
      gen = generation_.load(std::memory_order_acquire);
    }
    if (gen == seen) {
      std::unique_lock<std::mutex> lock(mu_);
      sleepers_.fetch_add(1, std::memory_order_seq_cst);
      start_cv_.wait(lock, [&] {
        return stop_.load() || generation_.load(std::memory_order_seq_cst) != seen;
      });
      sleepers_.fetch_sub(1, std::memory_order_relaxed);
      gen = generation_.load(std::memory_order_acquire);
    }
    if (stop_.load()) return;
    seen = gen;
    fn_(ctx_, index, workers_);
    if (pending_.fetch_sub(1, std::memory_order_seq_cst) == 1 &&
        caller_sleeping_.load(std::memory_order_seq_cst)) {
      std::lock_guard<std::mutex> lock(mu_);
      done_cv_.notify_one();
    }
  }
}

}  // namespace llmwire
