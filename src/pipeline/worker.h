// A worker stage in the ring: receives activations from the previous board, runs its layers,
// passes the result on; forwards everything else, adding itself to HELLO and STATS rounds.
// Stateless about retries: running a position twice writes the same KV entry with the same
// bits, so the head can resend freely (docs/PROTOCOL.md "Session").
#pragma once

#include "engine/model.h"
#include "link/frame.h"
#include "link/hop.h"
#include "link/messages.h"
#include "pipeline/clock.h"
#include "pipeline/split_sampler.h"

namespace llmwire {

struct WorkerOptions {
  uint32_t boot_id = 1;                         // random per boot: lets the head see reboots
  uint16_t protocol_version = kMessageVersion;  // what HELLO reports (tests fake old firmware)
};

class Worker final : public FrameSink {
 public:
  // Frame buffer and hop resend buffer, for prompt chunks of up to `batch` positions per
  // frame (RunOptions::prompt_batch; the model's batch rows come from the model's regions).
  static size_t scratch_bytes(const ImageInfo& info, uint32_t batch = 1);
  // `scratch` holds scratch_bytes(info) bytes; it and the rest outlive the worker.
  Status init(Model* model, ByteLink* link, Clock* clock, uint8_t* scratch,
              const WorkerOptions& opts);
  // Waits up to timeout_ms for bytes and handles every complete frame. False once the link
  // is gone for good.
  bool poll(uint32_t timeout_ms);
  StageStats stats() const;
  const StageInfo& info() const { return info_; }
  const HopCounters& hop_counters() const { return hop_.counters(); }

 private:
  void on_frame(const Frame& f) override;
  void on_activation(const Frame& f);
  // ACTIVATION_BATCH: one batched pass over this stage's layers for the whole chunk.
  void on_activation_batch(const Frame& f);
  // The checks every activation addressed to this stage passes (session, width, positions
  // pos .. pos+count-1 within the context, none missing before pos); false when the stage
  // must not compute it (it has answered with ERROR or NEED_REPLAY, or dropped a stale frame).
  bool admit(const ActivationHeader& h, uint32_t dim, uint32_t count);
  void send_error(ErrorCode code, const char* text);
  // CLASSIFY: passes it on, then answers with this stage's classifier slice.
  void on_classify(const Frame& f);
  // SAMPLE_CHAIN: continues the chain over this stage's rows and passes it on.
  void on_sample_chain(const Frame& f);
  // SAMPLE_TOP: passes it on if later stages answer it too, then answers with SAMPLE_CANDS.
  void on_sample_top(const Frame& f);
  // True for a frame of a session older than the current one (a late or duplicated frame).
  bool is_stale_session(uint32_t session_id) const;
  void switch_session(uint32_t session_id);
  void send(MsgType type, size_t len);
  void forward(const Frame& f);

  Model* model_ = nullptr;
  ByteLink* link_ = nullptr;
  Clock* clock_ = nullptr;
  Hop hop_;  // the hop from the previous board and the hop to the next
  StageInfo info_;
  uint32_t session_ = 0;
  bool has_session_ = false;
  uint32_t old_session_ = 0;  // the session before session_: its late frames are ignored
  bool has_old_session_ = false;
  uint32_t have_ = 0;  // leading positions of the session held in the KV cache
  StageStats stats_;
  SliceSampler slice_;  // this stage's classifier rows, for sampled decoding
  ProbIndex top_[kSampleTopMax];
};

}  // namespace llmwire
