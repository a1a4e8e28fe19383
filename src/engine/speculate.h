// Prompt-lookup drafting for speculative decoding: the next tokens are guessed by copying
// what followed an earlier occurrence of the context's last few tokens (stories repeat
// names and phrases). The guesses are verified by the model in one batched pass
// (generator.cpp), so a wrong guess costs compute, never a different story.
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace llmwire {

// Default longest suffix looked up (GenerateSpeculation::ngram).
constexpr uint32_t kDraftNgram = 3;

// Writes up to max_draft guessed continuations of ctx[0..n) into out and returns how many.
// For g = min(max_ngram, n - 1) down to 1: the most recent j < n - g with
// ctx[j..j+g) == ctx[n-g..n); the draft is ctx[j+g ..] (at most max_draft tokens, never past
// n). 0 when no suffix recurs. Reads only ctx; out may be ctx + n.
uint32_t find_draft(const int32_t* ctx, size_t n, uint32_t max_ngram, uint32_t max_draft,
                    int32_t* out);

}  // namespace llmwire
