#include "pipeline/split_sampler.h"

#include "engine/fp16.h"
#include "pipeline/classifier_split.h"

namespace llmwire {

bool split_softmax_max(const ClassSlice* slices, size_t n, float t, float* m) {
  if (!(t > 0.0f && t < f32_from_bits(0x7F800000u))) return false;
  // softmax_max keeps a NaN row 0; otherwise the largest non-NaN value, the earliest on ties
  // (the value is what matters: equal values divide to equal values).
  for (size_t k = 0; k < n; k++) {
    if (slices[k].row_begin == slices[k].row_end) continue;
    if (slices[k].flags & kSliceFirstNaN) {
      *m = f32_from_bits(0x7FC00000u);
      return true;
    }
    break;
  }
  bool have = false;
  float best = 0.0f;
  for (size_t k = 0; k < n; k++) {
    if (!(slices[k].flags & kSliceHasMax)) continue;
    if (!have || slices[k].max > best) {
      have = true;
      best = slices[k].max;
    }
  }
  float one = best;  // the max through the sampler's own division
  scale_logits(&one, 1, t);
  *m = one;
  return true;
}

void SliceSampler::init(float* v, uint32_t begin, uint32_t end) {
  v_ = v;
  begin_ = begin;
  end_ = end;
  held_ = Held::kNothing;
}

void SliceSampler::classified(uint32_t session, uint32_t pos) {
  held_ = Held::kLogits;
  session_ = session;
  pos_ = pos;
}

bool SliceSampler::same_position(uint32_t session, uint32_t pos) const {
  return held_ != Held::kNothing && session == session_ && pos == pos_;
}

bool SliceSampler::same_key(uint32_t session, uint32_t pos, float t, float m) const {
  return same_position(session, pos) && bits_from_f32(t) == t_bits_ && bits_from_f32(m) == m_bits_;
}

bool SliceSampler::exp_sum(uint32_t session, uint32_t pos, float t, float m, float* sum) {
  const uint32_t n = end_ - begin_;
  if (held_ == Held::kLogits && same_position(session, pos)) {
    scale_logits(v_, n, t);
    *sum = softmax_exp_sum(v_, n, m, *sum);
    held_ = Held::kExps;
    t_bits_ = bits_from_f32(t);
    m_bits_ = bits_from_f32(m);
    return true;
  }
  if (held_ == Held::kExps && same_key(session, pos, t, m)) {
    // A resent chain: the same additions again, in the same order.
    float s = *sum;
    for (uint32_t i = 0; i < n; i++) s += v_[i];
    *sum = s;
    return true;
  }
  return false;
}

bool SliceSampler::prepare(uint32_t session, uint32_t pos, float t, float m) {
  float unused = 0.0f;
  return exp_sum(session, pos, t, m, &unused);
}

bool SliceSampler::probabilities(uint32_t session, uint32_t pos, float t, float m, float sum) {
  if (!same_key(session, pos, t, m)) return false;
  if (held_ == Held::kExps) {
    softmax_normalise(v_, end_ - begin_, sum);
    held_ = Held::kProbs;
    sum_bits_ = bits_from_f32(sum);
    return true;
  }
  return held_ == Held::kProbs && bits_from_f32(sum) == sum_bits_;
}

bool SliceSampler::cdf(uint32_t session, uint32_t pos, float t, float m, float sum, float coin,
                       float* cdf, int32_t* row) {
  if (!probabilities(session, pos, t, m, sum)) return false;
  const int32_t i = cdf_continue(v_, end_ - begin_, coin, cdf);
  *row = i >= 0 ? (int32_t)begin_ + i : -1;
  return true;
}

namespace {

// heap[0] is the worst kept candidate (the last in top-p order), so a better one replaces it.
void sift_worst_down(ProbIndex* heap, uint32_t n, uint32_t i) {
  const ProbIndex item = heap[i];
  for (;;) {
    uint32_t child = 2 * i + 1;
    if (child >= n) break;
    if (child + 1 < n && topp_before(heap[child], heap[child + 1])) child++;
    if (!topp_before(item, heap[child])) break;
    heap[i] = heap[child];
    i = child;
  }
  heap[i] = item;
}

}  // namespace

bool SliceSampler::top(uint32_t session, uint32_t pos, float t, float m, float sum, float cutoff,
                       const ProbIndex* after, ProbIndex* out, uint32_t cap, uint32_t* count,
                       uint32_t* n0, ClassSlice* summary) {
  if (!same_key(session, pos, t, m)) return false;
  const bool normalise = held_ == Held::kExps;
  if (!normalise && !(held_ == Held::kProbs && bits_from_f32(sum) == sum_bits_)) return false;
  const uint32_t n = end_ - begin_;
  summary->row_begin = begin_;
  summary->row_end = end_;
  summary->flags = 0;
  summary->max = 0.0f;
  summary->argmax = 0;
  uint32_t candidates = 0, kept = 0;
  // One pass over the rows in cache-sized pieces: normalise a piece (the first request), then
  // its max and its candidates while it is in the cache.
  const uint32_t kPiece = 256;
  for (uint32_t p = 0; p < n; p += kPiece) {
    const uint32_t len = n - p < kPiece ? n - p : kPiece;
    if (normalise) softmax_normalise(v_ + p, len, sum);
    ClassSlice part;
    summarize_slice(v_ + p, begin_ + p, begin_ + p + len, &part);
    if (p == 0) summary->flags |= part.flags & kSliceFirstNaN;
    // The earlier piece keeps equal maxima, as summarize_slice keeps the lower row.
    if ((part.flags & kSliceHasMax) &&
        (!(summary->flags & kSliceHasMax) || part.max > summary->max)) {
      summary->flags |= kSliceHasMax;
      summary->max = part.max;
      summary->argmax = part.argmax;
    }
    for (uint32_t i = p; i < p + len; i++) {
      // The monolithic nucleus' test; NaN never passes.
      if (!(v_[i] >= cutoff)) continue;
      candidates++;
      const ProbIndex c{v_[i], begin_ + i};
      if (after && !topp_before(*after, c)) continue;
      if (kept < cap) {
        // Sift up: the worst kept candidate stays at the root.
        uint32_t j = kept++;
        while (j > 0) {
          const uint32_t parent = (j - 1) / 2;
          if (!topp_before(out[parent], c)) break;
          out[j] = out[parent];
          j = parent;
        }
        out[j] = c;
      } else if (cap > 0 && topp_before(c, out[0])) {
        out[0] = c;
        sift_worst_down(out, kept, 0);
      }
    }
  }
  if (normalise) {
    held_ = Held::kProbs;
    sum_bits_ = bits_from_f32(sum);
  }
  // Pop the worst to the back until sorted: out[0] is then the best.
  for (uint32_t size = kept; size > 1; size--) {
    const ProbIndex worst = out[0];
    out[0] = out[size - 1];
    out[size - 1] = worst;
    sift_worst_down(out, size - 1, 0);
  }
  *count = kept;
  *n0 = candidates;
  return true;
}

}  // namespace llmwire
