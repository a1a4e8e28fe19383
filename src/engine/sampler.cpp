#include "engine/sampler.h"

#include <stdint.h>

#include "engine/mathfn.h"

namespace llmwire {

namespace {

struct ProbIndex {
  float prob;
  uint32_t index;
};

// Top-p order: probability descending, then id ascending. A total order (NaN never becomes a
// candidate), so a heap pops exactly the sequence a full sort would produce.
inline bool before(const ProbIndex& a, const ProbIndex& b) {
  if (a.prob != b.prob) return a.prob > b.prob;
  return a.index < b.index;
}

// Restores the heap property below `i` in heap[0..n), the "first" element at the root.
void sift_down(ProbIndex* heap, uint32_t n, uint32_t i) {
  const ProbIndex item = heap[i];
  for (;;) {
    uint32_t child = 2 * i + 1;
    if (child >= n) break;
    if (child + 1 < n && before(heap[child + 1], heap[child])) child++;
    if (!before(heap[child], item)) break;
    heap[i] = heap[child];
    i = child;
  }
  heap[i] = item;
}

ProbIndex* aligned_scratch(void* p) {
  const uintptr_t a = alignof(ProbIndex);
  return reinterpret_cast<ProbIndex*>(((uintptr_t)p + a - 1) & ~(a - 1));
}

// llama2.c's multinomial draw: the first index whose cumulative probability exceeds the coin.
int32_t sample_mult(const float* probs, uint32_t n, float coin) {
  float cdf = 0.0f;
  for (uint32_t i = 0; i < n; i++) {
    cdf += probs[i];
    if (coin < cdf) return (int32_t)i;
  }
  return (int32_t)(n - 1);  // rounding left the coin above the total
}

// llama2.c's nucleus draw. Instead of sorting every candidate, a heap is built in O(n) and only
// the head of the order (until the mass exceeds topp) is popped: O(n + k log n).
int32_t sample_topp(const float* probs, uint32_t n, float topp, float coin, ProbIndex* heap) {
  // Tokens below the cutoff cannot be in the nucleus; dropping them first saves work.
  const float cutoff = (1.0f - topp) / (float)(n - 1);
  uint32_t n0 = 0;
  for (uint32_t i = 0; i < n; i++) {
    if (probs[i] >= cutoff) heap[n0++] = ProbIndex{probs[i], i};
  }
  // Only possible when topp < 1/n (or with NaNs); llama2.c would read out of bounds here.
  if (n0 == 0) return argmax(probs, n);

  for (uint32_t i = n0 / 2; i-- > 0;) sift_down(heap, n0, i);
  // Each pop moves the current first element to the end, so the popped order is
  // heap[n0-1], heap[n0-2], ...: the sorted order, read backwards from the end.
  float cumulative = 0.0f;
  uint32_t size = n0;
  uint32_t last = n0 - 1;  // position in sorted order of the last kept candidate
  for (uint32_t k = 0; k < n0; k++) {
    const ProbIndex top = heap[0];
    size--;
    heap[0] = heap[size];
    heap[size] = top;
    if (size > 1) sift_down(heap, size, 0);
    cumulative += top.prob;
    if (cumulative > topp) {
      last = k;
      break;
    }
  }

  const float r = coin * cumulative;
  float cdf = 0.0f;
  for (uint32_t k = 0; k <= last; k++) {
    const ProbIndex& c = heap[n0 - 1 - k];
    cdf += c.prob;
    if (r < cdf) return (int32_t)c.index;
  }
  return (int32_t)heap[n0 - 1 - last].index;  // rounding
}

}  // namespace

size_t Sampler::scratch_bytes(uint32_t vocab_size) {
  const size_t slack = alignof(ProbIndex) - 1;  // init() aligns the caller's pointer up
  if ((size_t)vocab_size > (SIZE_MAX - slack) / sizeof(ProbIndex)) return SIZE_MAX;
  return (size_t)vocab_size * sizeof(ProbIndex) + slack;
}

Status Sampler::init(uint32_t vocab_size, const SamplerSettings& settings, void* scratch,
                     size_t scratch_len) {
  scratch_ = nullptr;
  vocab_size_ = 0;
  if (vocab_size == 0 || !scratch) return Status::kBadArgument;
  if (scratch_len < scratch_bytes(vocab_size)) return Status::kArenaTooSmall;
  vocab_size_ = vocab_size;
  settings_ = settings;
  rng_state_ = settings.seed;
  scratch_ = aligned_scratch(scratch);
  return Status::kOk;
}

uint32_t Sampler::random_u32() {
  // xorshift64* (llama2.c): the high 32 bits of the scrambled state.
  rng_state_ ^= rng_state_ >> 12;
  rng_state_ ^= rng_state_ << 25;
  rng_state_ ^= rng_state_ >> 27;
  return (uint32_t)((rng_state_ * 0x2545F4914F6CDD1DULL) >> 32);
}

float Sampler::random_f32() {
  return (float)(random_u32() >> 8) / 16777216.0f;
}

int32_t Sampler::sample(float* logits) {
  const uint32_t n = vocab_size_;
  if (n == 0 || !logits) return 0;
  const float t = settings_.temperature;
  // llama2.c clamps negative temperatures to 0 (greedy); NaN is treated the same way.
  if (greedy()) return argmax(logits, n);
  for (uint32_t i = 0; i < n; i++) logits[i] /= t;
  softmax(logits, n);
  const float coin = random_f32();
  const float topp = settings_.topp;
  if (!(topp > 0.0f && topp < 1.0f) || n == 1) return sample_mult(logits, n, coin);
  return sample_topp(logits, n, topp, coin, static_cast<ProbIndex*>(scratch_));
}

int32_t argmax(const float* v, uint32_t n) {
  if (n == 0) return 0;
  uint32_t best = 0;
  float best_v = v[0];
  for (uint32_t i = 1; i < n; i++) {
    if (v[i] > best_v) {
      best = i;
      best_v = v[i];
    }
  }
  return (int32_t)best;
}

void softmax(float* v, uint32_t n) {
  if (n == 0) return;
  float m = v[0];
  for (uint32_t i = 1; i < n; i++) {
    if (v[i] > m) m = v[i];
  }
  float sum = 0.0f;
  for (uint32_t i = 0; i < n; i++) {
    v[i] = exp_f32(v[i] - m);
    sum += v[i];
  }
  for (uint32_t i = 0; i < n; i++) v[i] /= sum;
}

}  // namespace llmwire
