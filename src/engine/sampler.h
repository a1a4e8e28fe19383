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
// In-place softmax in the engine's fixed order with the engine's own exp.
void softmax(float* v, uint32_t n);

}  // namespace llmwire
