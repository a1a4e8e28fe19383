#include "engine/sampler.h"

#include <stdint.h>

#include "engine/mathfn.h"

namespace llmwire {

namespace {

inline bool before(const ProbIndex& a, const ProbIndex& b) {
  return topp_before(a, b);
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
  const int32_t i = cdf_continue(probs, n, coin, &cdf);
  return i >= 0 ? i : (int32_t)(n - 1);  // rounding left the coin above the total
}

// llama2.c's nucleus, without sorting every candidate: a heap is built in O(n) and only the
// head of the order (until the mass exceeds topp) is popped: O(n + k log n). Returns how many
// candidates the nucleus keeps (0 when no id reaches the cutoff); the k-th of them in top-p
// order is heap[*n0 - 1 - k], their probability sum is *mass.
uint32_t nucleus(const float* probs, uint32_t n, float topp, ProbIndex* heap, uint32_t* n0_out,
                 float* mass) {
  // Tokens below the cutoff cannot be in the nucleus; dropping them first saves work.
  const float cutoff = topp_cutoff(topp, n);
  uint32_t n0 = 0;
  for (uint32_t i = 0; i < n; i++) {
    if (probs[i] >= cutoff) heap[n0++] = ProbIndex{probs[i], i};
  }
  *n0_out = n0;
  *mass = 0.0f;
  // Only possible when topp < 1/n (or with NaNs); llama2.c would read out of bounds here.
  if (n0 == 0) return 0;

  for (uint32_t i = n0 / 2; i-- > 0;) sift_down(heap, n0, i);
  // Each pop moves the current first element to the end, so the popped order is
  // heap[n0-1], heap[n0-2], ...: the sorted order, read backwards from the end.
  float cumulative = 0.0f;
  uint32_t size = n0;
  uint32_t count = n0;
  for (uint32_t k = 0; k < n0; k++) {
    const ProbIndex top = heap[0];
    size--;
    heap[0] = heap[size];
    heap[size] = top;
    if (size > 1) sift_down(heap, size, 0);
    cumulative += top.prob;
    if (cumulative > topp) {
      count = k + 1;
      break;
    }
  }
  *mass = cumulative;
  return count;
}

// llama2.c's nucleus draw: the first candidate (top-p order) whose running sum exceeds
// coin * mass.
int32_t sample_topp(const float* probs, uint32_t n, float topp, float coin, ProbIndex* heap) {
  uint32_t n0 = 0;
  float cumulative = 0.0f;
  const uint32_t count = nucleus(probs, n, topp, heap, &n0, &cumulative);
  if (count == 0) return argmax(probs, n);
  return nucleus_draw([&](uint32_t k) { return heap[n0 - 1 - k]; }, count, cumulative, coin);
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
  scale_logits(logits, n, t);
  softmax(logits, n);
  const float coin = random_f32();
  const float topp = settings_.topp;
  if (!sampler_uses_topp(topp, n)) return sample_mult(logits, n, coin);
  return sample_topp(logits, n, topp, coin, static_cast<ProbIndex*>(scratch_));
}

// Speculative sampling with a point-mass draft (docs/GENERATION.md "Speculative decoding"):
// q is the distribution sample() draws from; the draft d is kept with probability q(d), else
// the token is drawn from q with d removed and renormalised. Either way the token is
// distributed as q.
int32_t Sampler::sample_draft(float* logits, int32_t draft, bool* accepted) {
  *accepted = false;
  const uint32_t n = vocab_size_;
  if (n == 0 || !logits) return 0;
  const float t = settings_.temperature;
  if (!(t > 0.0f)) {
    const int32_t best = argmax(logits, n);
    *accepted = best == draft;
    return best;
  }
  scale_logits(logits, n, t);
  softmax(logits, n);
  const float* probs = logits;
  const bool in_vocab = draft >= 0 && (uint32_t)draft < n;
  const float coin = random_f32();
  const float topp = settings_.topp;
  if (!(topp > 0.0f && topp < 1.0f) || n == 1) {
    // q = probs, in id order.
    const float qd = in_vocab ? probs[draft] : 0.0f;
    if (coin < qd || draft_rule_ == DraftRule::kAlwaysAcceptForTests) {
      *accepted = true;
      return draft;
    }
    const float coin2 = random_f32();
    if (draft_rule_ == DraftRule::kKeepDraftInResidualForTests) return sample_mult(probs, n, coin2);
    float rest = 0.0f;
    for (uint32_t i = 0; i < n; i++) {
      if ((int32_t)i != draft) rest += probs[i];
    }
    const float r = coin2 * rest;
    float cdf = 0.0f;
    int32_t last = -1;
    for (uint32_t i = 0; i < n; i++) {
      if ((int32_t)i == draft) continue;
      cdf += probs[i];
      last = (int32_t)i;
      if (r < cdf) return last;
    }
    return last >= 0 ? last : draft;  // rounding
  }
  // q = probs / mass over the nucleus, in top-p order.
  ProbIndex* heap = static_cast<ProbIndex*>(scratch_);
  uint32_t n0 = 0;
  float mass = 0.0f;
  const uint32_t count = nucleus(probs, n, topp, heap, &n0, &mass);
  if (count == 0) {  // q is a point mass on the arg max
    const int32_t best = argmax(probs, n);
    *accepted = best == draft || draft_rule_ == DraftRule::kAlwaysAcceptForTests;
    if (*accepted) return draft;
    random_f32();  // a rejection always draws its second coin
    return best;
  }
  float pd = 0.0f;
  for (uint32_t k = 0; k < count; k++) {
    if ((int32_t)heap[n0 - 1 - k].index == draft) pd = heap[n0 - 1 - k].prob;
  }
  if (coin < pd / mass || draft_rule_ == DraftRule::kAlwaysAcceptForTests) {
    *accepted = true;
    return draft;
  }
  const float coin2 = random_f32();
  const bool remove = draft_rule_ != DraftRule::kKeepDraftInResidualForTests;
  float rest = 0.0f;
  for (uint32_t k = 0; k < count; k++) {
    const ProbIndex& c = heap[n0 - 1 - k];
    if (!remove || (int32_t)c.index != draft) rest += c.prob;
  }
  const float r = coin2 * rest;
  float cdf = 0.0f;
  int32_t last = -1;
  for (uint32_t k = 0; k < count; k++) {
    const ProbIndex& c = heap[n0 - 1 - k];
    if (remove && (int32_t)c.index == draft) continue;
    cdf += c.prob;
    last = (int32_t)c.index;
    if (r < cdf) return last;
  }
  return last >= 0 ? last : draft;  // rounding
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
  const float m = softmax_max(v, n);
  const float sum = softmax_exp_sum(v, n, m, 0.0f);
  softmax_normalise(v, n, sum);
}

float softmax_max(const float* v, uint32_t n) {
  if (n == 0) return 0.0f;
  float m = v[0];
  for (uint32_t i = 1; i < n; i++) {
    if (v[i] > m) m = v[i];
  }
  return m;
}

float softmax_exp_sum(float* v, uint32_t n, float m, float sum) {
  for (uint32_t i = 0; i < n; i++) {
    v[i] = exp_f32(v[i] - m);
    sum += v[i];
  }
  return sum;
}

void softmax_normalise(float* v, uint32_t n, float sum) {
  for (uint32_t i = 0; i < n; i++) v[i] /= sum;
}

void scale_logits(float* v, uint32_t n, float t) {
  for (uint32_t i = 0; i < n; i++) v[i] /= t;
}

int32_t cdf_continue(const float* probs, uint32_t n, float coin, float* cdf) {
  float c = *cdf;
  for (uint32_t i = 0; i < n; i++) {
    c += probs[i];
    if (coin < c) {
      *cdf = c;
      return (int32_t)i;
    }
  }
  *cdf = c;
  return -1;
}

}  // namespace llmwire
