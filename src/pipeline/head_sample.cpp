// RingHead's split sampler: temperature and top-p sampling with the classifier split across
// the ring, giving the token Sampler::sample gives on the whole logits vector
// (docs/PROTOCOL.md "Sampled classifier split").
#include <string.h>

#include "pipeline/classifier_split.h"
#include "pipeline/head.h"

namespace llmwire {

Status RingHead::sample_ring(uint32_t pos, Sampler* sampler, int32_t* next) {
  bool coin_drawn = false;
  float coin = 0.0f;
  for (uint32_t attempt = 0;; attempt++) {
    round_lost_ = false;
    const Status s = sample_try(pos, sampler, &coin_drawn, &coin, next);
    if (s == Status::kOk || !round_lost_) return s;
    if (attempt >= opts_.max_retries) {
      set_error(
          "no sampling answer from the ring for position %u after %u restarts: every board must "
          "run this firmware version and a stage image from the same split",
          (unsigned)pos, (unsigned)opts_.max_retries);
      return s;
    }
    counters_.sample_restarts++;
  }
}

Status RingHead::sample_try(uint32_t pos, Sampler* sampler, bool* coin_drawn, float* coin_out,
                            int32_t* next) {
  const uint32_t vocab = model_->config().vocab_size;
  const float t = sampler->settings().temperature;
  const float topp = sampler->settings().topp;
  // Round 1: every slice's raw logits and their max.
  Status s = classify_ring(pos, ClassifyMode::kMax, nullptr);
  if (s != Status::kOk) return s;
  float m = 0.0f;
  if (!split_softmax_max(slices_, stages_, t, &m)) return Status::kBadArgument;
  const uint32_t own_end = model_->classifier_end();
  own_.init(model_->logits(), 0, own_end);
  own_.classified(session_, pos);

  // Round 2: the softmax denominator, one chain in row order: the head's rows, then each
  // worker's.
  chain_ = SampleChain{};
  chain_.session_id = session_;
  chain_.pos = pos;
  chain_.mode = (uint8_t)ChainMode::kSum;
  chain_.temperature = t;
  chain_.max = m;
  // PREPARE first: the workers compute their exponentials while the head computes its own.
  chain_.mode = (uint8_t)ChainMode::kPrepare;
  if (stages_ > 1 && !send_chain()) return Status::kLinkError;
  chain_.mode = (uint8_t)ChainMode::kSum;
  uint64_t t0 = clock_->now_us();
  own_.exp_sum(session_, pos, t, m, &chain_.sum);
  counters_.compute_us += clock_->now_us() - t0;
  s = chain_round(&chain_);
  if (s != Status::kOk) return s;
  const float sum = chain_.sum;
  if (!*coin_drawn) *coin_out = sampler->draw_coin();  // where sample() draws it: after the softmax
  *coin_drawn = true;
  const float coin = *coin_out;

  if (!sampler_uses_topp(topp, vocab)) {
    // Round 3, multinomial: the cdf chain in row order until the coin is passed.
    float cdf = 0.0f;
    int32_t row = -1;
    t0 = clock_->now_us();
    own_.cdf(session_, pos, t, m, sum, coin, &cdf, &row);
    counters_.compute_us += clock_->now_us() - t0;
    if (row >= 0) {
      *next = row;
      return Status::kOk;
    }
    chain_.mode = (uint8_t)ChainMode::kCdf;
    chain_.sum = sum;
    chain_.cdf = cdf;
    chain_.coin = coin;
    s = chain_round(&chain_);
    if (s != Status::kOk) return s;
    *next = (chain_.flags & kChainFound) ? (int32_t)chain_.row : (int32_t)(vocab - 1);
    return Status::kOk;
  }

  // Round 3, top-p: every slice's best candidates, merged in top-p order into the nucleus.
  top_ = SampleTop{};
  top_.session_id = session_;
  top_.pos = pos;
  top_.temperature = t;
  top_.max = m;
  top_.sum = sum;
  top_.cutoff = topp_cutoff(topp, vocab);
  uint32_t k_max = opts_.sample_batch;
  const uint32_t room = sample_cands_max_count(model_->config().dim);
  if (k_max > room) k_max = room;
  if (k_max > kSampleTopMax) k_max = kSampleTopMax;
  if (k_max == 0) k_max = 1;
  top_.count = (uint16_t)k_max;
  for (uint32_t k = 0; k < stages_; k++) cand_at_[k] = cand_n_[k] = cand_sent_[k] = 0;
  s = fetch_candidates(0);
  if (s == Status::kOk) s = top_round(0);
  if (s != Status::kOk) return s;
  uint32_t n0 = 0;
  for (uint32_t k = 0; k < stages_; k++) {
    probs_[k].row_begin = slices_[k].row_begin;
    probs_[k].row_end = slices_[k].row_end;
    n0 += cand_n0_[k];
  }
  if (n0 == 0) {  // no row reaches the cutoff: sample_topp's arg max of the probabilities
    *next = (int32_t)merge_argmax(probs_, stages_);
    return Status::kOk;
  }
  ProbIndex* seq = sampler->candidates();  // the nucleus in top-p order
  float cumulative = 0.0f;
  uint32_t count = n0;
  for (uint32_t i = 0; i < n0; i++) {
    // A slice whose buffer ran out while it holds more must refill before the merge.
    for (uint32_t k = 0; k < stages_; k++) {
      if (cand_at_[k] == cand_n_[k] && cand_sent_[k] < cand_n0_[k]) {
        s = fetch_candidates(k);
        if (s != Status::kOk) return s;
      }
    }
    int best = -1;
    for (uint32_t k = 0; k < stages_; k++) {
      if (cand_at_[k] == cand_n_[k]) continue;
      if (best < 0 || topp_before(cands_[k * kSampleTopMax + cand_at_[k]],
                                  cands_[(uint32_t)best * kSampleTopMax + cand_at_[best]])) {
        best = (int)k;
      }
    }
    if (best < 0) {
      set_error(
          "the ring's slices announced %u top-p candidates but sent fewer: every board must run "
          "the same llmwire firmware",
          (unsigned)n0);
      return Status::kRingMismatch;
    }
    seq[i] = cands_[(uint32_t)best * kSampleTopMax + cand_at_[best]++];
    cumulative += seq[i].prob;
    if (cumulative > topp) {
      count = i + 1;
      break;
    }
  }
  *next = nucleus_draw([&](uint32_t k) { return seq[k]; }, count, cumulative, coin);
  return Status::kOk;
}

Status RingHead::fetch_candidates(uint32_t k) {
  ProbIndex* buf = cands_ + k * kSampleTopMax;
  const bool after = cand_n_[k] > 0;
  const ProbIndex last = after ? buf[cand_n_[k] - 1] : ProbIndex{0.0f, 0};
  if (k == 0) {
    uint32_t count = 0;
    const uint64_t t0 = clock_->now_us();
    own_.top(session_, top_.pos, top_.temperature, top_.max, top_.sum, top_.cutoff,
             after ? &last : nullptr, buf, top_.count, &count, &cand_n0_[0], &probs_[0]);
    counters_.compute_us += clock_->now_us() - t0;
    cand_at_[0] = 0;
    cand_n_[0] = count;
    cand_sent_[0] += count;
    return Status::kOk;
  }
  top_.flags = kTopAfter;
  top_.after_index = last.index;
  top_.after_prob = last.prob;
  counters_.sample_fetches++;
  const Status s = top_round((uint8_t)k);
  if (s == Status::kOk && cand_n_[k] == 0) {
    set_error(
        "stage %u announced %u top-p candidates but sent %u: every board must run the same "
        "llmwire firmware",
        (unsigned)k, (unsigned)cand_n0_[k], (unsigned)cand_sent_[k]);
    return Status::kRingMismatch;
  }
  return s;
}

bool RingHead::send_chain() {
  const size_t n = encode_sample_chain(chain_, hop_.payload(), hop_.payload_capacity());
  if (!hop_.send((uint8_t)MsgType::kSampleChain, n)) {
    set_error("cannot write to the link (the next board or cable went away)");
    return false;
  }
  counters_.frames_tx++;
  counters_.sample_rounds++;
  return true;
}

bool RingHead::send_top() {
  const size_t n = encode_sample_top(top_, hop_.payload(), hop_.payload_capacity());
  if (!hop_.send((uint8_t)MsgType::kSampleTop, n)) {
    set_error("cannot write to the link (the next board or cable went away)");
    return false;
  }
  counters_.frames_tx++;
  counters_.sample_rounds++;
  return true;
}

Status RingHead::chain_round(SampleChain* m) {
  chain_ = *m;
  round_done_ = false;
  if (!send_chain()) return Status::kLinkError;
  const Status s = await_round(&RingHead::send_chain);
  *m = chain_;
  return s;
}

Status RingHead::top_round(uint8_t stage) {
  top_.stage = stage;
  if (stage == 0) {
    top_.flags = 0;
    top_.after_index = 0;
    top_.after_prob = 0.0f;
  }
  cands_done_ = 0;
  round_done_ = false;
  if (!send_top()) return Status::kLinkError;
  return await_round(&RingHead::send_top);
}

Status RingHead::await_round(bool (RingHead::*resend)()) {
  last_progress_us_ = clock_->now_us();
  consecutive_timeouts_ = 0;
  while (!round_done_) {
    if (failed_ || !pump(5) || failed_) return Status::kLinkError;
    if (round_done_) break;
    const uint32_t backoff = consecutive_timeouts_ < 3 ? consecutive_timeouts_ : 3;
    if (clock_->now_us() - last_progress_us_ > ((uint64_t)opts_.timeout_ms * 1000) << backoff) {
      counters_.timeouts++;
      // Twice unanswered: more likely a worker that lost its slice (rebooted) than a wire the
      // hops have not yet repaired; sample_ring starts the token again from CLASSIFY.
      if (++consecutive_timeouts_ >= 2) {
        round_lost_ = true;
        return Status::kLinkError;
      }
      if (!(this->*resend)()) return Status::kLinkError;
      last_progress_us_ = clock_->now_us();
    }
  }
  return Status::kOk;
}

void RingHead::on_sample_chain(const SampleChain& m) {
  // Only the chain in progress, back from the last worker with the same key.
  if (round_done_ || m.session_id != chain_.session_id || m.pos != chain_.pos ||
      m.mode != chain_.mode || memcmp(&m.temperature, &chain_.temperature, 4) != 0 ||
      memcmp(&m.max, &chain_.max, 4) != 0) {
    return;
  }
  if (m.mode == (uint8_t)ChainMode::kCdf) {
    if (memcmp(&m.sum, &chain_.sum, 4) != 0 || memcmp(&m.coin, &chain_.coin, 4) != 0) return;
    if ((m.flags & kChainFound) && m.row >= model_->config().vocab_size) return;
  }
  chain_ = m;
  round_done_ = true;
}

void RingHead::on_sample_cands(const SampleCandsView& v) {
  const SampleCandsHeader& h = v.h;
  const uint32_t k = h.stage;
  if (round_done_ || h.session_id != top_.session_id || h.pos != top_.pos || k == 0 ||
      k >= stages_ || (top_.stage != 0 && k != top_.stage) || (cands_done_ >> k) & 1) {
    return;
  }
  // The answer to this request: the same boundary, at most the count asked, rows the stage
  // holds.
  if ((h.flags & kTopAfter) != (top_.flags & kTopAfter) || h.after_index != top_.after_index ||
      memcmp(&h.after_prob, &top_.after_prob, 4) != 0 || h.count > top_.count) {
    return;
  }
  const ClassSlice& rows = slices_[k];
  for (uint32_t i = 0; i < h.count; i++) {
    const ProbIndex c = sample_cand_at(v, i);
    if (c.index < rows.row_begin || c.index >= rows.row_end) return;
    cands_[k * kSampleTopMax + i] = c;
  }
  if ((h.flags & kCandsHasMax) && (h.pargmax < rows.row_begin || h.pargmax >= rows.row_end)) return;
  cand_at_[k] = 0;
  cand_n_[k] = h.count;
  cand_sent_[k] += h.count;
  cand_n0_[k] = h.n0;
  probs_[k].flags = (uint8_t)(((h.flags & kCandsHasMax) ? kSliceHasMax : 0) |
                              ((h.flags & kCandsFirstNaN) ? kSliceFirstNaN : 0));
  probs_[k].max = h.pmax;
  probs_[k].argmax = h.pargmax;
  counters_.candidates_rx += h.count;
  cands_done_ |= 1ull << k;
  last_progress_us_ = clock_->now_us();
  consecutive_timeouts_ = 0;
  const uint64_t all = (stages_ >= 64 ? ~0ull : (1ull << stages_) - 1) & ~1ull;
  if (top_.stage != 0 || (cands_done_ & all) == all) round_done_ = true;
}

}  // namespace llmwire
