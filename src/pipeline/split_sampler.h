// The sampled classifier split (docs/PROTOCOL.md "Sampled classifier split"): what one board
// does with its slice of the logits so that the ring draws exactly the token
// engine/sampler.h Sampler::sample draws from the whole vector. The softmax denominator and
// the multinomial cdf are single float chains in row order, so a board *continues* them over
// its rows (SAMPLE_CHAIN) instead of summing its rows apart; top-p candidates come best first
// from each slice (SAMPLE_CANDS) and the head merges them in top-p order.
#pragma once

#include <stdint.h>

#include "engine/sampler.h"
#include "link/messages.h"

namespace llmwire {

// Top-p candidates a board returns per SAMPLE_CANDS, at most (also capped by the frame room,
// sample_cands_max_count, and the head's HeadOptions::sample_batch).
constexpr uint32_t kSampleTopMax = 64;

// The global softmax max of the temperature-scaled logits from the slices' CLASS_SLICE
// summaries of the raw logits (in row order, tiling the vocabulary). Division by a positive
// finite t is monotone, so max(x / t) = max(x) / t; NaN when row 0 is NaN (softmax_max keeps
// v[0]). False for a temperature that is not finite and positive (the caller samples from
// the whole vector instead).
bool split_softmax_max(const ClassSlice* slices, size_t n, float t, float* m);

// What a slice's rows hold, and for which position and key.
class SliceSampler {
 public:
  // v holds rows [begin, end) of the logits (v[0] is row begin).
  void init(float* v, uint32_t begin, uint32_t end);
  // v now holds the raw logits of (session, pos).
  void classified(uint32_t session, uint32_t pos);
  // Round 2 (SAMPLE_CHAIN kSum): scales the rows by t, takes exp(v - m) and continues *sum
  // over them in row order. A repeat for the same key re-adds the kept exponentials. False
  // when the rows do not hold this position's logits.
  bool exp_sum(uint32_t session, uint32_t pos, float t, float m, float* sum);
  // SAMPLE_CHAIN kPrepare: the same exponentials without the sum, so that exp_sum() later
  // only adds them (the same floats in the same order). False as exp_sum.
  bool prepare(uint32_t session, uint32_t pos, float t, float m);
  // Round 3, multinomial (SAMPLE_CHAIN kCdf): the probabilities (exp / sum) continue *cdf;
  // *row is the row the coin falls in, or -1.
  bool cdf(uint32_t session, uint32_t pos, float t, float m, float sum, float coin, float* cdf,
           int32_t* row);
  // Round 3, top-p (SAMPLE_TOP): up to `cap` of the slice's candidates (probability >=
  // cutoff) strictly after `after` (if given) in top-p order, best first; *n0 counts all of
  // them; *summary: HAS_MAX / FIRST_NAN, max and arg max of the probabilities (for the
  // monolithic sampler's fallback when no row reaches the cutoff).
  bool top(uint32_t session, uint32_t pos, float t, float m, float sum, float cutoff,
           const ProbIndex* after, ProbIndex* out, uint32_t cap, uint32_t* count, uint32_t* n0,
           ClassSlice* summary);
  uint32_t begin() const { return begin_; }
  uint32_t end() const { return end_; }

 private:
  enum class Held : uint8_t { kNothing, kLogits, kExps, kProbs };
  bool same_position(uint32_t session, uint32_t pos) const;
  bool same_key(uint32_t session, uint32_t pos, float t, float m) const;
  // kExps or kProbs of this key, made kProbs with this sum.
  bool probabilities(uint32_t session, uint32_t pos, float t, float m, float sum);

  float* v_ = nullptr;
  uint32_t begin_ = 0, end_ = 0;
  Held held_ = Held::kNothing;
  uint32_t session_ = 0, pos_ = 0;
  uint32_t t_bits_ = 0, m_bits_ = 0, sum_bits_ = 0;
};

}  // namespace llmwire
