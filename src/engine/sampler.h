// Next-token sampler with llama2.c's semantics: greedy at temperature 0, else temperature,
// softmax and multinomial or top-p (nucleus) sampling, driven by llama2.c's xorshift64*
// generator. Deterministic from the seed; memory from the caller; bounded work per token.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "engine/status.h"

namespace llmwire {

struct SamplerSettings {
  float temperature = 1.0f;  // 0 = greedy
  float topp = 0.9f;         // <= 0 or >= 1: plain multinomial
  uint64_t seed = 1;
};

// A top-p candidate: a row of the vocabulary and its probability.
struct ProbIndex {
  float prob;
  uint32_t index;
};

// Top-p order: probability descending, then id ascending. A total order (NaN never becomes a
// candidate), so a heap pops exactly the sequence a full sort would produce.
inline bool topp_before(const ProbIndex& a, const ProbIndex& b) {
  if (a.prob != b.prob) return a.prob > b.prob;
  return a.index < b.index;
}

// How sample_draft() treats a draft. Only kExact keeps the output distribution; the others
// exist so the statistical test can show that it detects a broken rule.
enum class DraftRule { kExact, kAlwaysAcceptForTests, kKeepDraftInResidualForTests };

class Sampler {
 public:
  // Scratch bytes init() needs for a vocabulary.
  static size_t scratch_bytes(uint32_t vocab_size);

  Status init(uint32_t vocab_size, const SamplerSettings& settings, void* scratch,
              size_t scratch_len);

  // Picks the next token. Modifies `logits` in place (temperature, softmax).
  int32_t sample(float* logits);

  // Picks the token at a position whose input was a guessed (drafted) token `draft`, for
  // speculative decoding: the result is distributed exactly as sample()'s. Greedy: the arg
  // max, no coin. Otherwise one coin a: the draft is kept when a < q(draft); else a second
  // coin draws from q without the draft (docs/GENERATION.md). *accepted: the result is the
  // draft, kept. Modifies `logits` in place like sample().
  int32_t sample_draft(float* logits, int32_t draft, bool* accepted);
  void set_draft_rule(DraftRule r) { draft_rule_ = r; }  // tests only

  void set_temperature(float t) { settings_.temperature = t; }
  void set_topp(float p) { settings_.topp = p; }
  void reseed(uint64_t seed) {
    settings_.seed = seed;
    rng_state_ = seed;
  }
  const SamplerSettings& settings() const { return settings_; }
  // sample() is argmax (temperature 0, negative or NaN, as in llama2.c).
  bool greedy() const { return !(settings_.temperature > 0.0f); }

  // The pieces of sample() for a ring whose boards hold slices of the logits
  // (pipeline/split_sampler.h): the coin sample() draws after the softmax, and its scratch as
  // room for the nucleus (vocab_size entries).
  float draw_coin() { return random_f32(); }
  ProbIndex* candidates() const { return static_cast<ProbIndex*>(scratch_); }
  uint32_t vocab_size() const { return vocab_size_; }

  // llama2.c's generator, exposed for tests.
  uint32_t random_u32();
  float random_f32();

 private:
  uint32_t vocab_size_ = 0;
  SamplerSettings settings_;
  uint64_t rng_state_ = 1;
  void* scratch_ = nullptr;
  DraftRule draft_rule_ = DraftRule::kExact;
};

// Index of the largest value; the first one on ties.
int32_t argmax(const float* v, uint32_t n);
// In-place softmax in the engine's fixed order with the engine's own exp: softmax_max, then
// softmax_exp_sum from 0, then softmax_normalise. The pieces run over a range of rows, so a
// ring that holds the logits in slices continues each chain in row order (docs/PROTOCOL.md
// "Sampled classifier split") and gets the same floats.
void softmax(float* v, uint32_t n);
// llama2.c's max: v[0], then every later v[i] > it (NaN at v[0] stays; later NaNs are skipped).
float softmax_max(const float* v, uint32_t n);
// v[i] = exp(v[i] - m), each added to `sum` in row order; returns the new sum.
float softmax_exp_sum(float* v, uint32_t n, float m, float sum);
void softmax_normalise(float* v, uint32_t n, float sum);
// sample()'s temperature: every logit divided by t.
void scale_logits(float* v, uint32_t n, float t);
// True when sample() draws from the nucleus (0 < topp < 1 and n > 1), else multinomial.
inline bool sampler_uses_topp(float topp, uint32_t n) {
  return topp > 0.0f && topp < 1.0f && n > 1;
}
// The nucleus' candidate cutoff over a vocabulary of n: probabilities below it are never in it.
inline float topp_cutoff(float topp, uint32_t n) {
  return (1.0f - topp) / (float)(n - 1);
}
// The multinomial draw continued over rows [0, n): adds probs[i] to *cdf in order and returns
// the first i with coin < *cdf, or -1 when the coin is still above it.
int32_t cdf_continue(const float* probs, uint32_t n, float coin, float* cdf);
// The nucleus draw: the first of the `count` candidates (at(k) the k-th in top-p order) whose
// running sum exceeds coin * mass, mass being the candidates' sum as the nucleus added it.
template <class At>
int32_t nucleus_draw(At at, uint32_t count, float mass, float coin) {
  const float r = coin * mass;
  float cdf = 0.0f;
  for (uint32_t k = 0; k < count; k++) {
    const ProbIndex c = at(k);
    cdf += c.prob;
    if (r < cdf) return (int32_t)c.index;
  }
  return (int32_t)at(count - 1).index;  // rounding
}

}  // namespace llmwire
