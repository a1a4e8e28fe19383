#include "pipeline/classifier_split.h"

namespace llmwire {

void summarize_slice(const float* v, uint32_t begin, uint32_t end, ClassSlice* out) {
  out->row_begin = begin;
  out->row_end = end;
  out->flags = 0;
  out->max = 0.0f;
  out->argmax = 0;
  if (begin == end) return;
  if (v[0] != v[0]) out->flags |= kSliceFirstNaN;
  for (uint32_t i = 0; i < end - begin; i++) {
    if (v[i] != v[i]) continue;  // NaN: never the arg max unless it is row 0 of the vocabulary
    if (!(out->flags & kSliceHasMax) || v[i] > out->max) {
      out->flags |= kSliceHasMax;
      out->max = v[i];
      out->argmax = begin + i;
    }
  }
}

uint32_t merge_argmax(const ClassSlice* slices, size_t n) {
  if (n == 0) return 0;
  for (size_t k = 0; k < n; k++) {  // row 0 is the first row of the first slice holding rows
    if (slices[k].row_begin == slices[k].row_end) continue;
    if (slices[k].flags & kSliceFirstNaN) return 0;
    break;
  }
  bool have = false;
  float best = 0.0f;
  uint32_t arg = 0;
  for (size_t k = 0; k < n; k++) {
    if (!(slices[k].flags & kSliceHasMax)) continue;
    if (!have || slices[k].max > best) {  // ties keep the earlier (lower) row
      have = true;
      best = slices[k].max;
      arg = slices[k].argmax;
    }
  }
  return arg;
}

}  // namespace llmwire
