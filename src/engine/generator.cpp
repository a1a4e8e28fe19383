#include "engine/generator.h"

#include <string.h>

#include "engine/speculate.h"

namespace llmwire {

Status Forwarder::feed_prompt(const int32_t* tokens, uint32_t n) {
  for (uint32_t i = 0; i < n; i++) {
    const Status s = forward(tokens[i], i, false, nullptr);
    if (s != Status::kOk) return s;
  }
  return Status::kOk;
}

Status Forwarder::forward_batch(const int32_t* tokens, uint32_t pos, uint32_t n, float* logits,
                                uint32_t vocab) {
  for (uint32_t i = 0; i < n; i++) {
    const float* l = nullptr;
    const Status s = forward(tokens[i], pos + i, true, &l);
    if (s != Status::kOk) return s;
    memcpy(logits + (size_t)i * vocab, l, (size_t)vocab * sizeof(float));
  }
  return Status::kOk;
}

Status Forwarder::next_token(int32_t token, uint32_t pos, Sampler* sampler, int32_t* next) {
  const float* logits = nullptr;
  const Status s = forward(token, pos, true, &logits);
  if (s != Status::kOk) return s;
  // llama2.c's sampler mutates logits; they are this position's scratch.
  *next = sampler->sample(const_cast<float*>(logits));
  return Status::kOk;
}

bool piece_is_printable(const Piece& p) {
  if (p.len == 0) return false;
  if (p.len == 1) {
    const unsigned char c = (unsigned char)p.data[0];
    const bool printable = c >= 0x20 && c < 0x7F;
    const bool space = c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
    return printable || space;
  }
  return true;
}

Status generate(Forwarder* fwd, const Tokenizer& tok, Sampler* sampler, const char* prompt,
                size_t prompt_len, uint32_t max_new, int32_t* tokens, size_t capacity,
                const GenerateIo& io, GenerateStats* stats, size_t* n_tokens,
                const GenerateSpeculation* spec) {
  *stats = GenerateStats{};
  size_t n = 0;
  if (capacity < prompt_len + 3) return Status::kBadArgument;
  // Refuse a prompt that cannot fit before encoding it: BOS plus the text and its dummy-prefix
  // space, each token covering at most max_token_len bytes.
  const uint32_t seq = fwd->seq_len();
  const size_t max_len = tok.max_token_len() ? tok.max_token_len() : 1;
  const size_t at_least = 1 + (prompt_len > 0 ? (prompt_len + 1 + max_len - 1) / max_len : 0);
  if (at_least >= seq) return Status::kPromptTooLong;
  Status s = tok.encode(prompt, prompt_len, true, false, tokens, capacity, &n);
  if (s != Status::kOk) return s;
  if (n >= seq) return Status::kPromptTooLong;
  stats->prompt_tokens = (uint32_t)n;
  s = fwd->begin();
  if (s != Status::kOk) return s;
  const uint64_t t0 = io.now_us ? io.now_us(io.ctx) : 0;

  // Prompt: show its text, feed all but the last token without logits.
  for (size_t i = 0; i + 1 < n; i++) {
    const Piece p = tok.decode(tokens[i], tokens[i + 1]);
    if (io.emit && piece_is_printable(p)) io.emit(io.ctx, p.data, p.len);
  }
  if (n > 1) {
    s = fwd->feed_prompt(tokens, (uint32_t)(n - 1));
    if (s != Status::kOk) return s;
  }
  const uint32_t vocab = tok.vocab_size();
  uint32_t max_draft = 0;
  if (spec && spec->max_draft > 0 && fwd->max_batch() > 1) {
    if (!spec->logits || vocab == 0 || spec->logits_len / vocab < (size_t)spec->max_draft + 1)
      return Status::kBadArgument;
    max_draft = spec->max_draft < fwd->max_batch() - 1 ? spec->max_draft : fwd->max_batch() - 1;
  }
  int32_t token = tokens[n - 1];
  uint32_t pos = (uint32_t)(n - 1);
  uint64_t t_first = t0;
  uint32_t produced = 0;
  bool done = false;
  while (!done && produced < max_new && pos < seq) {
    if (io.should_stop && io.should_stop(io.ctx)) break;
    // Guess up to k tokens after `token` (staged at tokens[n..n+k)) and run all k+1 positions
    // in one pass; only as many as can still be generated and fit the context.
    uint32_t limit = max_draft;
    if (limit > max_new - produced - 1) limit = max_new - produced - 1;
    if (limit > seq - 1 - pos) limit = seq - 1 - pos;
    if (limit > capacity - n) limit = (uint32_t)(capacity - n);
    const uint32_t k =
        limit ? find_draft(tokens, n, spec->ngram ? spec->ngram : kDraftNgram, limit, tokens + n)
              : 0;
    // No guess: one position, through next_token() so a ring with a split classifier can merge
    // the boards' slices instead of gathering every logit.
    int32_t single = 0;
    s = k == 0 ? fwd->next_token(token, pos, sampler, &single)
               : fwd->forward_batch(tokens + n - 1, pos, k + 1, spec->logits, vocab);
    if (s != Status::kOk) return s;
    stats->passes++;
    stats->drafted += k;
    // Position pos+i predicts the token after tokens[n-1]; while guesses are kept, the next
    // guess is at tokens[n]. The first rejection ends the pass (later logits saw wrong text).
    for (uint32_t i = 0; i <= k; i++) {
      // llama2.c's sampler mutates logits; they are this position's scratch.
      float* l = spec ? spec->logits + (size_t)i * vocab : nullptr;
      bool kept = false;
      const int32_t next = k == 0  ? single
                           : i < k ? sampler->sample_draft(l, tokens[n], &kept)
                                   : sampler->sample(l);
      if (produced == 0 && i == 0 && io.now_us) t_first = io.now_us(io.ctx);
      pos++;
      if ((uint32_t)next == tok.bos_id() || (uint32_t)next == tok.eos_id()) {
        done = true;
        break;
      }
      if (n >= capacity) return Status::kBadArgument;
      tokens[n++] = next;
      produced++;
      stats->generated_tokens++;
      if (kept) stats->accepted++;
      const Piece p = tok.decode(token, next);
      if (io.emit && piece_is_printable(p)) io.emit(io.ctx, p.data, p.len);
      token = next;
      if (i < k && !kept) break;
    }
  }
  if (io.now_us) {
    const uint64_t t_end = io.now_us(io.ctx);
    stats->prompt_us = t_first - t0;
    stats->generation_us = t_end - t_first;
  }
  *n_tokens = n;
  return Status::kOk;
}

}  // namespace llmwire
