#include "engine/speculate.h"

namespace llmwire {

uint32_t find_draft(const int32_t* ctx, size_t n, uint32_t max_ngram, uint32_t max_draft,
                    int32_t* out) {
  if (n < 2 || max_draft == 0) return 0;
  const size_t longest = max_ngram < n - 1 ? max_ngram : n - 1;
  for (size_t g = longest; g >= 1; g--) {
    const int32_t* suffix = ctx + n - g;
    // Most recent occurrence first: nearby text predicts best.
    for (size_t j = n - g; j-- > 0;) {
      size_t m = 0;
      while (m < g && ctx[j + m] == suffix[m]) m++;
      if (m < g) continue;
      const size_t avail = n - (j + g);
      const uint32_t k = avail < max_draft ? (uint32_t)avail : max_draft;
      // Forward copy: with out == ctx + n the source is always behind what is written.
      for (uint32_t i = 0; i < k; i++) out[i] = ctx[j + g + i];
      return k;
    }
  }
  return 0;
}

}  // namespace llmwire
