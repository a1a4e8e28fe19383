// The classifier split across the ring (docs/PROTOCOL.md "Classifier split"): what a board
// reports about its slice of the logits, and the head's exact merge of those reports into the
// token the monolithic greedy sampler (engine/sampler.h argmax) picks.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "link/messages.h"

namespace llmwire {

// flags, max and argmax of v[0 .. end-begin), the logits of rows [begin, end): the largest
// non-NaN value and its lowest row, and whether row `begin` is NaN.
void summarize_slice(const float* v, uint32_t begin, uint32_t end, ClassSlice* out);

// The monolithic argmax over the concatenation of the slices, which tile [0, vocab) in
// order (slices[0] starts at row 0). argmax() keeps the first value that nothing after it
// beats with `>`: row 0 if row 0 is NaN (NaN is never beaten), else the lowest row holding
// the largest non-NaN value, which is the earliest slice's own arg max among the slices
// whose max is largest.
uint32_t merge_argmax(const ClassSlice* slices, size_t n);

}  // namespace llmwire
