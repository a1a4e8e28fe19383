// The generation loop of llama2.c's run.c, portable: encode the prompt, feed it, sample,
// stream decoded pieces, stop at BOS (the model's end of story) or the length limit.
// The forward step is pluggable: one model in RAM, or the head of a ring of boards.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "engine/sampler.h"
#include "engine/status.h"
#include "engine/tokenizer.h"

namespace llmwire {

class Forwarder {
 public:
  // Starts a new sequence (a new prompt): positions restart at 0.
  virtual Status begin() { return Status::kOk; }
  // Runs token at pos. need_logits is false for prompt positions whose logits are unused;
  // then *logits may be left unset.
  virtual Status forward(int32_t token, uint32_t pos, bool need_logits, const float** logits) = 0;
  // Feeds prompt tokens [0, n) at positions [0, n) without needing their logits. The default
  // calls forward() one by one; a pipeline overrides it to stream them.
  virtual Status feed_prompt(const int32_t* tokens, uint32_t n);
  // Runs tokens[0..n) at positions pos .. pos+n-1 and writes each position's logits to
  // logits[i * vocab ..] (speculative decoding's verification). The default calls forward()
  // one by one; a model overrides it to read the weights once for all n (n <= max_batch()).
  virtual Status forward_batch(const int32_t* tokens, uint32_t pos, uint32_t n, float* logits,
                               uint32_t vocab);
  // Positions forward_batch() runs in one pass over the weights; 1 turns speculation off.
  virtual uint32_t max_batch() const { return 1; }
  // Runs token at pos and picks the next token with `sampler`. The default is forward() then
  // sampler->sample(); a ring whose classifier is split overrides it to merge the boards'
  // slices without gathering the whole vocabulary when decoding greedily.
  virtual Status next_token(int32_t token, uint32_t pos, Sampler* sampler, int32_t* next);
  virtual uint32_t seq_len() const = 0;

 protected:
  ~Forwarder() = default;  // not deleted through the interface: no operator delete on MCUs
};

struct GenerateStats {
  uint32_t prompt_tokens = 0;
  uint32_t generated_tokens = 0;
  uint64_t prompt_us = 0;      // time to the first generated token's logits
  uint64_t generation_us = 0;  // time for the generated tokens after that
  // Passes over the weights while generating: one per forward() or forward_batch() call.
  uint32_t passes = 0;
  uint32_t drafted = 0;   // tokens guessed by prompt lookup (speculation)
  uint32_t accepted = 0;  // guesses kept
};

// Prompt-lookup speculative decoding (engine/speculate.h, docs/GENERATION.md). Off when
// max_draft is 0 or the forwarder's max_batch() is 1.
struct GenerateSpeculation {
  uint32_t max_draft = 0;   // longest guess verified in one pass
  uint32_t ngram = 3;       // longest context suffix looked up (kDraftNgram)
  float* logits = nullptr;  // caller-owned, (max_draft + 1) * vocab floats
  size_t logits_len = 0;    // floats at logits
};

// Callbacks the platform provides.
struct GenerateIo {
  void* ctx = nullptr;
  void (*emit)(void* ctx, const char* bytes, size_t len) = nullptr;  // decoded text
  uint64_t (*now_us)(void* ctx) = nullptr;                           // clock
  bool (*should_stop)(void* ctx) = nullptr;                          // optional: user abort
};

// Generates up to max_new tokens after the prompt. `tokens` must hold prompt_len + 3 + max_new
// entries (the encoded prompt and the generated ids are left there; drafts are staged after
// them). `spec` (optional) turns on speculative decoding: greedy output is unchanged, sampled
// output has the same distribution but consumes the random stream differently.
Status generate(Forwarder* fwd, const Tokenizer& tok, Sampler* sampler, const char* prompt,
                size_t prompt_len, uint32_t max_new, int32_t* tokens, size_t capacity,
                const GenerateIo& io, GenerateStats* stats, size_t* n_tokens,
                const GenerateSpeculation* spec = nullptr);

// llama2.c's safe_printf rule: a piece that is a single unprintable byte is not shown.
bool piece_is_printable(const Piece& p);

}  // namespace llmwire
