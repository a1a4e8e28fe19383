#include "pipeline/worker.h"

#include "pipeline/chunk.h"
#include "pipeline/classifier_split.h"
#include "pipeline/ring.h"

namespace llmwire {

size_t Worker::scratch_bytes(const ImageInfo& info, uint32_t batch) {
  return kMaxFrameSize + Hop::resend_bytes(info.config.dim, batch);
}

Status Worker::init(Model* model, ByteLink* link, Clock* clock, uint8_t* scratch,
                    const WorkerOptions& opts) {
  if (!model || !link || !clock || !scratch) return Status::kBadArgument;
  model_ = model;
  link_ = link;
  clock_ = clock;
  const ImageInfo& im = model->info();
  HopOptions ho;
  ho.stage_index = (uint8_t)im.stage_index;
  ho.stage_count = (uint8_t)im.stage_count;
  ho.boot_id = opts.boot_id;
  const uint32_t batch = chunk_positions(model->prompt_batch(), im.config.dim);
  ho.repair_bytes = (uint32_t)Hop::repair_bytes(im.config.dim, batch);
  hop_.init(link, clock, this, scratch, scratch + kMaxFrameSize,
            Hop::resend_bytes(im.config.dim, batch), ho);
  info_ = stage_info_for(im, model->seq_len(), model->kv_type(), opts.boot_id);
  info_.protocol_version = opts.protocol_version;
  stats_ = StageStats{};
  stats_.stage_index = im.stage_index;
  stats_.boot_id = opts.boot_id;
  slice_.init(model->logits(), model->classifier_begin(), model->classifier_end());
  return Status::kOk;
}

bool Worker::poll(uint32_t timeout_ms) {
  uint8_t buf[512];
  const uint64_t t0 = clock_->now_us();
  const size_t n = link_->read(buf, sizeof buf, hop_.wait_ms(timeout_ms));
  stats_.link_wait_us += clock_->now_us() - t0;
  if (n > 0) {
    hop_.push(buf, n);
  } else {
    hop_.tick();
  }
  return link_->ok();
}

StageStats Worker::stats() const {
  StageStats s = stats_;
  const FrameCounters& c = hop_.rx_counters();
  s.crc_errors = c.crc_errors;
  s.resyncs = c.resyncs;
  s.oversize = c.oversize;
  s.partial_timeouts = c.partial_timeouts;
  s.version_mismatch = c.version_mismatch;
  s.frames_resent = hop_.counters().frames_resent;
  return s;
}

void Worker::send(MsgType type, size_t len) {
  if (len > 0 && hop_.send((uint8_t)type, len)) stats_.frames_tx++;
}

void Worker::forward(const Frame& f) {
  if (hop_.forward(f)) stats_.frames_tx++;
}

void Worker::on_frame(const Frame& f) {
  stats_.frames_rx++;
  if (validate_message(f.type, f.payload, f.len) != MsgStatus::kOk) return;  // not ours to trust
  switch ((MsgType)f.type) {
    case MsgType::kActivation:
      on_activation(f);
      break;
    case MsgType::kActivationBatch:
      on_activation_batch(f);
      break;
    case MsgType::kClassify:
      on_classify(f);
      break;
    case MsgType::kSampleChain:
      on_sample_chain(f);
      break;
    case MsgType::kSampleTop:
      on_sample_top(f);
      break;
    case MsgType::kHello:
      send(MsgType::kHello,
           hello_append(f.payload, f.len, info_, hop_.payload(), hop_.payload_capacity()));
      break;
    case MsgType::kStatsRequest: {
      uint32_t id = 0;
      decode_stats_request(f.payload, f.len, &id);
      const StageStats mine = stats();
      send(MsgType::kStats, encode_stats(id, &mine, 1, hop_.payload(), hop_.payload_capacity()));
      break;
    }
    case MsgType::kStats: {
      const StageStats mine = stats();
      send(MsgType::kStats,
           stats_append(f.payload, f.len, mine, hop_.payload(), hop_.payload_capacity()));
      break;
    }
    case MsgType::kReset: {
      uint32_t id = 0;
      decode_reset(f.payload, f.len, &id);
      if (!has_session_ || id != session_) switch_session(id);
      have_ = 0;
      forward(f);
      break;
    }
    default:  // NEED_REPLAY, ERROR: on their way to the head
      forward(f);
      break;
  }
}

// Session ids are (head boot id << 16) + n with n counting up from 1 within a head's boot
// (docs/PROTOCOL.md): of two ids from one boot the one with the smaller n (mod 2^16) is older.
// Across boots there is no order, so the session this worker left last is remembered.
bool Worker::is_stale_session(uint32_t session_id) const {
  if (has_old_session_ && session_id == old_session_) return true;
  if ((session_id >> 16) != (session_ >> 16)) return false;
  return (int16_t)(uint16_t)(session_id - session_) < 0;
}

void Worker::switch_session(uint32_t session_id) {
  if (has_session_) {
    old_session_ = session_;
    has_old_session_ = true;
  }
  session_ = session_id;
  has_session_ = true;
  have_ = 0;
}

void Worker::send_error(ErrorCode code, const char* text) {
  size_t n = 0;
  while (text[n]) n++;
  send(MsgType::kError, encode_error((uint8_t)info_.stage_index, (uint8_t)code, text, n,
                                     hop_.payload(), hop_.payload_capacity()));
}

bool Worker::admit(const ActivationHeader& h, uint32_t dim, uint32_t count) {
  ReplayReason reason = ReplayReason::kGap;
  if (!has_session_ || h.session_id != session_) {
    // A late frame of an earlier session must not wipe the current one's KV cache.
    if (has_session_ && is_stale_session(h.session_id)) return false;
    // A new session, or this board rebooted and lost the old one: start empty.
    if (h.pos > 0) reason = ReplayReason::kUnknownSession;
    switch_session(h.session_id);
  }
  if (dim != info_.dim) {
    send_error(ErrorCode::kDimsMismatch, "activation has the wrong dim for this stage");
    return false;
  }
  if (h.pos >= info_.seq_len || count > info_.seq_len - h.pos) {
    send_error(ErrorCode::kSequenceFull, "position beyond this stage's sequence length");
    return false;
  }
  if (h.pos > have_) {
    // An earlier position is missing (a lost frame, or this board rebooted): ask the head.
    NeedReplay m;
    m.session_id = session_;
    m.pos = h.pos;
    m.have = have_;
    m.epoch = h.epoch;
    m.stage_index = (uint8_t)info_.stage_index;
    m.reason = (uint8_t)reason;
    stats_.need_replay_sent++;
    send(MsgType::kNeedReplay, encode_need_replay(m, hop_.payload(), hop_.payload_capacity()));
    return false;
  }
  return true;
}

void Worker::on_activation(const Frame& f) {
  ActivationView a;
  decode_activation(f.payload, f.len, &a);
  if (a.h.dest_stage != info_.stage_index) {  // not for this stage: pass it on
    forward(f);
    return;
  }
  if (!admit(a.h, a.dim, 1)) return;
  float* x = model_->x();
  a.copy_to(x);
  const uint64_t t0 = clock_->now_us();
  const Status s = model_->run_layers(info_.layer_begin, info_.layer_end, a.h.pos, x);
  stats_.compute_us += clock_->now_us() - t0;
  if (s != Status::kOk) {
    send_error(ErrorCode::kInternal, status_message(s));
    return;
  }
  stats_.positions_computed++;
  if (a.h.pos == have_) have_++;
  ActivationHeader h = a.h;
  h.dest_stage = (uint8_t)((info_.stage_index + 1) % info_.stage_count);
  send(MsgType::kActivation,
       encode_activation(h, x, info_.dim, hop_.payload(), hop_.payload_capacity()));
}

void Worker::on_activation_batch(const Frame& f) {
  ActivationBatchView a;
  decode_activation_batch(f.payload, f.len, &a);
  if (a.h.dest_stage != info_.stage_index) {
    forward(f);
    return;
  }
  if (!admit(a.h, a.dim, a.count)) return;
  // The results go straight into the frame to send (the received one stays intact meanwhile).
  ActivationHeader h = a.h;
  h.dest_stage = (uint8_t)((info_.stage_index + 1) % info_.stage_count);
  uint8_t* out = hop_.payload();
  const size_t n = encode_activation_batch_header(h, a.count, a.dim, out, hop_.payload_capacity());
  const uint64_t t0 = clock_->now_us();
  const Status s = run_chunk(model_, info_.layer_begin, info_.layer_end, a.h.pos, a.count, a.data,
                             out + kActivationBatchHeaderSize);
  stats_.compute_us += clock_->now_us() - t0;
  if (s != Status::kOk) {
    send_error(ErrorCode::kInternal, status_message(s));
    return;
  }
  stats_.positions_computed += a.count;
  if (a.h.pos + a.count > have_) have_ = a.h.pos + a.count;  // admit(): pos <= have_
  send(MsgType::kActivationBatch, n);
}

}  // namespace llmwire

namespace llmwire {

void Worker::on_classify(const Frame& f) {
  ClassifyView c;
  decode_classify(f.payload, f.len, &c);
  // The next boards start on their slices at once; the head, which sent it, needs it not.
  if (info_.stage_index + 1 < info_.stage_count) forward(f);
  if (c.dim != info_.dim) {
    const char text[] = "classify activation has the wrong dim for this stage";
    send(MsgType::kError,
         encode_error((uint8_t)info_.stage_index, (uint8_t)ErrorCode::kDimsMismatch, text,
                      sizeof text - 1, hop_.payload(), hop_.payload_capacity()));
    return;
  }
  // Stateless like an activation: a resent CLASSIFY gets the same answer again.
  const uint32_t begin = model_->classifier_begin(), end = model_->classifier_end();
  float* logits = model_->logits();
  if (begin < end) {
    float* xn = model_->x();  // free between positions
    load_f32_array(c.data, c.dim, xn);
    const uint64_t t0 = clock_->now_us();
    model_->classify(xn, begin, end, logits);
    stats_.compute_us += clock_->now_us() - t0;
  }
  slice_.classified(c.h.session_id, c.h.pos);
  if (c.h.mode == (uint8_t)ClassifyMode::kLogits) {
    const uint32_t max_count = class_logits_max_count(info_.dim);
    const uint32_t chunk = max_count ? max_count : 1;
    ClassLogitsHeader h;
    h.session_id = c.h.session_id;
    h.pos = c.h.pos;
    h.stage = (uint8_t)info_.stage_index;
    for (uint32_t r = begin; r < end; r += chunk) {
      h.first_row = r;
      const uint32_t n = end - r < chunk ? end - r : chunk;
      send(MsgType::kClassLogits, encode_class_logits(h, logits + (r - begin), n, hop_.payload(),
                                                      hop_.payload_capacity()));
    }
  }
  ClassSlice m;
  summarize_slice(logits, begin, end, &m);
  m.session_id = c.h.session_id;
  m.pos = c.h.pos;
  m.stage = (uint8_t)info_.stage_index;
  send(MsgType::kClassSlice, encode_class_slice(m, hop_.payload(), hop_.payload_capacity()));
}

void Worker::on_sample_chain(const Frame& f) {
  SampleChain m;
  decode_sample_chain(f.payload, f.len, &m);
  if (m.mode == (uint8_t)ChainMode::kPrepare) {
    // Every board computes its exponentials at once; the SUM chain then only adds them.
    if (info_.stage_index + 1 < info_.stage_count) forward(f);
    const uint64_t t0 = clock_->now_us();
    slice_.prepare(m.session_id, m.pos, m.temperature, m.max);
    stats_.compute_us += clock_->now_us() - t0;
    return;
  }
  const bool found = (m.flags & kChainFound) != 0;
  if (slice_.begin() < slice_.end() && !found) {
    const uint64_t t0 = clock_->now_us();
    bool ok = false;
    if (m.mode == (uint8_t)ChainMode::kSum) {
      ok = slice_.exp_sum(m.session_id, m.pos, m.temperature, m.max, &m.sum);
    } else {
      int32_t row = -1;
      ok = slice_.cdf(m.session_id, m.pos, m.temperature, m.max, m.sum, m.coin, &m.cdf, &row);
      if (row >= 0) {
        m.flags |= kChainFound;
        m.row = (uint32_t)row;
      }
    }
    stats_.compute_us += clock_->now_us() - t0;
    // Not this position's logits (a stale or duplicated chain): the head's resend of the
    // whole round repairs it.
    if (!ok) return;
  }
  send(MsgType::kSampleChain, encode_sample_chain(m, hop_.payload(), hop_.payload_capacity()));
}

void Worker::on_sample_top(const Frame& f) {
  SampleTop q;
  decode_sample_top(f.payload, f.len, &q);
  const uint32_t me = info_.stage_index;
  const bool last = me + 1 >= info_.stage_count;
  if (q.stage != 0 && q.stage != me) {
    if (q.stage > me && !last) forward(f);
    return;
  }
  if (q.stage == 0 && !last) forward(f);  // every worker answers: the next one starts now
  uint32_t cap = sample_cands_max_count(info_.dim);
  if (cap > kSampleTopMax) cap = kSampleTopMax;
  if (cap > q.count) cap = q.count;
  SampleCandsHeader h;
  h.session_id = q.session_id;
  h.pos = q.pos;
  h.stage = (uint8_t)me;
  if (q.flags & kTopAfter) {
    h.flags |= kTopAfter;
    h.after_index = q.after_index;
    h.after_prob = q.after_prob;
  }
  if (slice_.begin() < slice_.end()) {
    const ProbIndex after{q.after_prob, q.after_index};
    uint32_t count = 0, n0 = 0;
    ClassSlice probs;
    const uint64_t t0 = clock_->now_us();
    const bool ok =
        slice_.top(q.session_id, q.pos, q.temperature, q.max, q.sum, q.cutoff,
                   (q.flags & kTopAfter) ? &after : nullptr, top_, cap, &count, &n0, &probs);
    stats_.compute_us += clock_->now_us() - t0;
    if (!ok) return;  // not this position's exponentials: the head resends the round
    h.count = (uint16_t)count;
    h.n0 = n0;
    if (probs.flags & kSliceHasMax) {
      h.flags |= kCandsHasMax;
      h.pmax = probs.max;
      h.pargmax = probs.argmax;
    }
    if (probs.flags & kSliceFirstNaN) h.flags |= kCandsFirstNaN;
  }
  send(MsgType::kSampleCands,
       encode_sample_cands(h, top_, hop_.payload(), hop_.payload_capacity()));
}

}  // namespace llmwire
