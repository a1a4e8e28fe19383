// The head of a ring (stage 0): embeds tokens, streams activations round the ring, applies
// its own (last) layers and the classifier, and owns every retry end to end: it resends on
// timeout, rewinds on NEED_REPLAY, and rebuilds a rebooted stage by replaying the session's
// tokens (docs/PROTOCOL.md). With a one-stage image it simply runs the whole model.
#pragma once

#include "engine/generator.h"
#include "engine/model.h"
#include "link/frame.h"
#include "link/hop.h"
#include "link/messages.h"
#include "pipeline/clock.h"
#include "pipeline/split_sampler.h"

namespace llmwire {

struct HeadOptions {
  uint32_t boot_id = 1;
  // Prompt chunks in flight while streaming the prompt (1 = no pipelining). A chunk is up to
  // the model's RunOptions::prompt_batch positions in one ACTIVATION_BATCH frame (at most what
  // a frame holds); with prompt_batch 1 every chunk is one position (ACTIVATION).
  uint32_t window = 4;
  uint32_t timeout_ms = 2000;  // a position not back in this time is resent
  uint32_t max_retries = 50;   // consecutive timeouts before giving up
  // Discovery: the first HELLO waits this long for its return, each retry twice as long as
  // the one before (at most hello_max_wait_ms), until hello_deadline_ms have passed.
  uint32_t hello_timeout_ms = 500;
  uint32_t hello_max_wait_ms = 4000;
  uint32_t hello_deadline_ms = 30000;
  // Sampled decoding with the classifier split: top-p candidates asked of each slice at a
  // time (SAMPLE_TOP count; at most kSampleTopMax and what a frame holds). Tests set it tiny
  // so that the head must fetch more.
  uint32_t sample_batch = 32;
};

struct HeadCounters {
  uint32_t positions_sent = 0;
  uint32_t chunks_sent = 0;      // ACTIVATION_BATCH frames (prompt chunks of 2 or more positions)
  uint32_t retransmissions = 0;  // positions resent after a timeout or a NEED_REPLAY gap
  uint32_t timeouts = 0;
  uint32_t need_replay_received = 0;
  uint32_t replays = 0;  // a stage lost its KV cache (rebooted) and was rebuilt
  uint32_t replayed_positions = 0;
  uint32_t duplicates = 0;  // results for positions already applied
  uint64_t compute_us = 0;  // the head's own layers, classifier and embedding
  uint64_t wait_us = 0;     // waiting on the ring
  uint32_t frames_rx = 0, frames_tx = 0;
  uint32_t hello_attempts = 0;   // HELLO rounds sent by the last discover()
  uint32_t classify_rounds = 0;  // CLASSIFY rounds (classifier split), resends included
  uint32_t logits_rows_rx = 0;   // logits received from workers (CLASS_LOGITS)
  uint32_t sample_rounds = 0;    // SAMPLE_CHAIN and SAMPLE_TOP frames sent, resends included
  uint32_t sample_fetches = 0;   // SAMPLE_TOPs to one slice for more candidates (top-p)
  uint32_t candidates_rx = 0;    // top-p candidates received (SAMPLE_CANDS)
  uint32_t sample_restarts = 0;  // sampling restarted from CLASSIFY (a worker lost its slice)
};

class RingHead final : public Forwarder, public FrameSink {
 public:
  // Scratch memory for the session's token history (replays), a frame buffer and the hop's
  // resend buffer (sized for prompt chunks of up to `batch` positions, the model's
  // RunOptions::prompt_batch).
  static size_t scratch_bytes(const ImageInfo& info, uint32_t seq_len, uint32_t batch = 1);

  Status init(Model* model, ByteLink* link, Clock* clock, const HeadOptions& opts, void* scratch,
              size_t scratch_len);
  // HELLO round: learns every stage and checks the ring. On failure writes why into msg.
  Status discover(char* msg, size_t cap);

  // Forwarder
  Status begin() override;  // a new session (new prompt): stages start empty
  Status forward(int32_t token, uint32_t pos, bool need_logits, const float** logits) override;
  Status feed_prompt(const int32_t* tokens, uint32_t n) override;
  // One board: up to RunOptions::prompt_batch positions per pass over the weights. A ring
  // verifies position by position (the default), which gains nothing.
  Status forward_batch(const int32_t* tokens, uint32_t pos, uint32_t n, float* logits,
                       uint32_t vocab) override;
  uint32_t max_batch() const override { return stages_ == 1 ? model_->prompt_batch() : 1; }
  // With the classifier split across the ring, greedy decoding gathers each board's slice max
  // (CLASS_SLICE) and sampling runs the split sampler (sample_ring); otherwise forward() then
  // the sampler.
  Status next_token(int32_t token, uint32_t pos, Sampler* sampler, int32_t* next) override;
  uint32_t seq_len() const override { return seq_len_; }

  // STATS round: every worker's counters (ring order, stage 1 first).
  Status collect_stats(StageStats* out, size_t cap, size_t* n);
  const HeadCounters& counters() const { return counters_; }
  FrameCounters link_counters() const { return hop_.rx_counters(); }
  const HopCounters& hop_counters() const { return hop_.counters(); }
  uint32_t stage_count() const { return stages_; }
  // The last failure in words ("stage 2 reports: ...", "no answer from the ring ...").
  const char* error() const { return error_; }

 private:
  enum class Wait { kNone, kHello, kStats };
  void on_frame(const Frame& f) override;
  void on_result(const ActivationView& a);
  // Positions pos .. pos+count-1 came back: the new ones go through the head's layers in one
  // batched pass (at most the model's prompt_batch positions each).
  void on_chunk_result(const ActivationBatchView& a);
  // The replay and duplicate bookkeeping of a result for [pos, pos+count): how many of its
  // leading positions to skip; count when there is nothing new to apply.
  uint32_t already_applied(uint32_t pos, uint32_t count);
  void on_need_replay(const NeedReplay& m);
  // Ensures positions [first, end) have gone round the ring and through the head's layers.
  Status run(uint32_t first, uint32_t end);
  bool send_position(uint32_t pos);
  bool send_chunk(uint32_t pos, uint32_t count);  // positions pos .. pos+count-1, count >= 2
  // A CLASSIFY round for `pos` (the classifier split across the ring): kLogits assembles the
  // whole vocabulary's logits in model_->logits(); kMax merges the slices' max into *arg.
  Status classify_ring(uint32_t pos, ClassifyMode mode, uint32_t* arg);
  bool send_classify();
  void on_class_logits(const ClassLogitsView& v);
  void on_class_slice(const ClassSlice& m);
  // The split sampler (docs/PROTOCOL.md "Sampled classifier split"): the token
  // sampler->sample() would draw from the whole logits vector, from the slices.
  // A worker that rebooted after CLASSIFY holds no logits and drops the sampling rounds; a
  // round unanswered twice restarts the token's sampling from CLASSIFY (which carries the
  // activation, so any board can answer it), up to opts_.max_retries times.
  Status sample_ring(uint32_t pos, Sampler* sampler, int32_t* next);
  // One try: *coin_drawn / *coin keep the sampler's one coin per token across tries.
  Status sample_try(uint32_t pos, Sampler* sampler, bool* coin_drawn, float* coin, int32_t* next);
  // Sends *m (the head's rows already in it) round the ring; *m becomes what comes back.
  Status chain_round(SampleChain* m);
  // SAMPLE_TOP to every worker (stage 0) or to one stage for the candidates after its last.
  Status top_round(uint8_t stage);
  // Refills stage k's candidate buffer with the next ones after its last (the head's own
  // slice locally).
  Status fetch_candidates(uint32_t k);
  // Waits until round_done_, resending with `resend` once on a timeout; a second timeout
  // sets round_lost_ (sample_ring restarts from CLASSIFY).
  Status await_round(bool (RingHead::*resend)());
  bool send_chain();
  bool send_top();
  void on_sample_chain(const SampleChain& m);
  void on_sample_cands(const SampleCandsView& v);
  bool pump(uint32_t timeout_ms);
  void set_error(const char* fmt, ...);

  Model* model_ = nullptr;
  ByteLink* link_ = nullptr;
  Clock* clock_ = nullptr;
  HeadOptions opts_;
  Hop hop_;                    // RX from the last stage, TX to stage 1
  int32_t* tokens_ = nullptr;  // the session's tokens by position
  float* xbuf_ = nullptr;      // embedding being sent
  uint32_t stages_ = 1;
  uint32_t chunk_ = 1;  // positions per prompt chunk (chunk_positions())
  uint32_t seq_len_ = 0;
  uint32_t session_ = 0;
  uint16_t epoch_ = 0;
  uint32_t completed_ = 0;   // positions applied (been round the ring and through our layers)
  uint32_t next_send_ = 0;   // next position to send
  uint32_t replay_ack_ = 0;  // while replaying: next replayed position expected back
  bool replaying_ = false;
  uint64_t last_progress_us_ = 0;
  uint32_t consecutive_timeouts_ = 0;
  bool failed_ = false;
  // Results of control rounds.
  Wait wait_ = Wait::kNone;
  bool got_reply_ = false;
  StageInfo ring_[kMaxStages];
  size_t ring_count_ = 0;
  StageStats* stats_out_ = nullptr;
  size_t stats_cap_ = 0, stats_n_ = 0;
  uint32_t request_id_ = 0;
  // Classifier split: the round in progress and each stage's answer ([0] is the head's own).
  bool split_classifier_ = false;
  bool cls_wait_ = false;
  uint32_t cls_pos_ = 0;
  ClassifyMode cls_mode_ = ClassifyMode::kMax;
  uint64_t slice_done_ = 0;  // bit k: stage k's CLASS_SLICE (and all its logits) are in
  ClassSlice slices_[kMaxStages];
  // kLogits: rows of stage k received so far are [slice_first_[k], slice_next_[k]).
  uint32_t slice_first_[kMaxStages];
  uint32_t slice_next_[kMaxStages];
  bool slice_started_[kMaxStages];
  // Split sampler state: the round in progress, and per stage its buffered candidates
  // (cands_ + k * kSampleTopMax: [cand_at_, cand_n_) not yet merged), how many of them it has
  // sent so far, how many it holds (n0) and its probabilities' summary.
  SliceSampler own_;
  bool round_done_ = false;
  bool round_lost_ = false;  // await_round gave up early for sample_ring to restart the token
  SampleChain chain_;        // kSum / kCdf: what was sent (resends), then what came back
  SampleTop top_;
  uint64_t cands_done_ = 0;  // bit k: stage k answered the SAMPLE_TOP in progress
  ProbIndex* cands_ = nullptr;
  uint32_t cand_at_[kMaxStages];
  uint32_t cand_n_[kMaxStages];
  uint32_t cand_sent_[kMaxStages];
  uint32_t cand_n0_[kMaxStages];
  ClassSlice probs_[kMaxStages];
  HeadCounters counters_;
  char error_[256] = {};
};

}  // namespace llmwire
