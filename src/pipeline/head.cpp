#include "pipeline/head.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "engine/fp16.h"
#include "pipeline/chunk.h"
#include "pipeline/classifier_split.h"
#include "pipeline/ring.h"

namespace llmwire {
namespace {

size_t align16(size_t v) {
  return (v + 15) & ~(size_t)15;
}

}  // namespace

size_t RingHead::scratch_bytes(const ImageInfo& info, uint32_t seq_len, uint32_t batch) {
  const uint32_t seq = seq_len ? seq_len : info.config.seq_len;
  const uint32_t chunk = chunk_positions(batch, info.config.dim);
  return align16(4ull * seq) + align16(4ull * info.config.dim) + align16(kMaxFrameSize) +
         align16(Hop::resend_bytes(info.config.dim, chunk)) +
         align16((size_t)info.stage_count * kSampleTopMax * sizeof(ProbIndex)) + 16;
}

Status RingHead::init(Model* model, ByteLink* link, Clock* clock, const HeadOptions& opts,
                      void* scratch, size_t scratch_len) {
  if (!model || !clock || !scratch) return Status::kBadArgument;
  const ImageInfo& info = model->info();
  if (info.stage_index != 0 || !info.has(kFlagHasEmbedding) || !info.has(kFlagHasClassifier)) {
    return Status::kNotInImage;
  }
  if (info.stage_count > 1 && !link) return Status::kBadArgument;
  if (scratch_len < scratch_bytes(info, model->seq_len(), model->prompt_batch()))
    return Status::kArenaTooSmall;
  model_ = model;
  link_ = link;
  clock_ = clock;
  opts_ = opts;
  if (opts_.window == 0) opts_.window = 1;
  uint8_t* p = static_cast<uint8_t*>(scratch);
  p += (16 - ((uintptr_t)p & 15)) & 15;
  tokens_ = reinterpret_cast<int32_t*>(p);
  p += align16(4ull * model->seq_len());
  xbuf_ = reinterpret_cast<float*>(p);
  p += align16(4ull * info.config.dim);
  stages_ = info.stage_count;
  chunk_ = chunk_positions(model->prompt_batch(), info.config.dim);
  if (link) {
    HopOptions ho;
    ho.stage_index = 0;
    ho.stage_count = (uint8_t)stages_;
    ho.boot_id = opts.boot_id;
    ho.repair_bytes = (uint32_t)Hop::repair_bytes(info.config.dim, chunk_);
    hop_.init(link, clock, this, p, p + align16(kMaxFrameSize),
              Hop::resend_bytes(info.config.dim, chunk_), ho);
  }
  p += align16(kMaxFrameSize) + align16(Hop::resend_bytes(info.config.dim, chunk_));
  cands_ = reinterpret_cast<ProbIndex*>(p);
  seq_len_ = model->seq_len();
  split_classifier_ = info.has(kFlagClassifierSlice);
  session_ = opts.boot_id << 16;  // never reused within a boot; differs across boots
  counters_ = HeadCounters{};
  return Status::kOk;
}

void RingHead::set_error(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(error_, sizeof error_, fmt, ap);
  va_end(ap);
  failed_ = true;
}

bool RingHead::pump(uint32_t timeout_ms) {
  uint8_t buf[512];
  const uint64_t t0 = clock_->now_us();
  const size_t n = link_->read(buf, sizeof buf, timeout_ms);
  counters_.wait_us += clock_->now_us() - t0;
  if (n > 0) {
    hop_.push(buf, n);
  } else {
    hop_.tick();
  }
  if (!link_->ok()) {
    set_error("the link to the ring is closed (a board or cable went away)");
    return false;
  }
  return true;
}

void RingHead::on_frame(const Frame& f) {
  counters_.frames_rx++;
  if (validate_message(f.type, f.payload, f.len) != MsgStatus::kOk) return;
  switch ((MsgType)f.type) {
    case MsgType::kActivation: {
      ActivationView a;
      decode_activation(f.payload, f.len, &a);
      if (a.h.dest_stage == 0 && a.dim == model_->config().dim) on_result(a);
      break;
    }
    case MsgType::kActivationBatch: {
      ActivationBatchView a;
      decode_activation_batch(f.payload, f.len, &a);
      if (a.h.dest_stage == 0) on_chunk_result(a);
      break;
    }
    case MsgType::kNeedReplay: {
      NeedReplay m;
      decode_need_replay(f.payload, f.len, &m);
      on_need_replay(m);
      break;
    }
    case MsgType::kClassLogits: {
      ClassLogitsView v;
      decode_class_logits(f.payload, f.len, &v);
      on_class_logits(v);
      break;
    }
    case MsgType::kClassSlice: {
      ClassSlice m;
      decode_class_slice(f.payload, f.len, &m);
      on_class_slice(m);
      break;
    }
    case MsgType::kSampleChain: {
      SampleChain m;
      decode_sample_chain(f.payload, f.len, &m);
      on_sample_chain(m);
      break;
    }
    case MsgType::kSampleCands: {
      SampleCandsView v;
      decode_sample_cands(f.payload, f.len, &v);
      on_sample_cands(v);
      break;
    }
    case MsgType::kHello: {
      if (wait_ != Wait::kHello) break;
      HelloView h;
      decode_hello(f.payload, f.len, &h);
      ring_count_ = h.count;
      for (size_t i = 0; i < h.count; i++) ring_[i] = h.entry(i);
      got_reply_ = true;
      break;
    }
    case MsgType::kStats: {
      StatsView v;
      decode_stats(f.payload, f.len, &v);
      if (wait_ != Wait::kStats || v.request_id != request_id_) break;
      stats_n_ = 0;
      for (size_t i = 0; i < v.count && stats_n_ < stats_cap_; i++)
        stats_out_[stats_n_++] = v.entry(i);
      got_reply_ = true;
      break;
    }
    case MsgType::kError: {
      ErrorMsg e;
      decode_error(f.payload, f.len, &e);
      set_error("stage %u reports %s: %.*s", (unsigned)e.stage_index, error_code_name(e.code),
                (int)e.text_len, e.text ? e.text : "");
      break;
    }
    default:
      break;
  }
}

uint32_t RingHead::already_applied(uint32_t pos, uint32_t count) {
  if (replaying_ && pos == replay_ack_ && pos < completed_) {
    // Replayed positions came back: the rebooted stage has them again. Our KV already does.
    replay_ack_ = completed_ - pos < count ? completed_ : pos + count;
    if (replay_ack_ >= completed_) replaying_ = false;
    last_progress_us_ = clock_->now_us();
    consecutive_timeouts_ = 0;
    if (completed_ - pos >= count) return count;
  }
  if (pos < completed_ && completed_ - pos >= count) {
    counters_.duplicates++;
    return count;
  }
  if (pos > completed_) return count;  // an earlier one was lost; the resend brings both
  return completed_ - pos;             // a chunk resent from before completed_: its new tail
}

void RingHead::on_chunk_result(const ActivationBatchView& a) {
  const uint32_t dim = model_->config().dim;
  if (a.h.session_id != session_ || a.dim != dim) return;
  const uint32_t skip = already_applied(a.h.pos, a.count);
  if (skip >= a.count) return;
  replaying_ = false;
  const uint32_t first = a.h.pos + skip, n = a.count - skip;
  const ImageInfo& info = model_->info();
  const uint64_t t0 = clock_->now_us();
  const Status s = run_chunk(model_, info.layer_begin, info.layer_end, first, n,
                             a.data + (size_t)skip * dim * 4, nullptr);
  counters_.compute_us += clock_->now_us() - t0;
  if (s != Status::kOk) {
    set_error("the head's layers failed at positions %u-%u: %s", (unsigned)first,
              (unsigned)(first + n - 1), status_message(s));
    return;
  }
  completed_ = first + n;
  last_progress_us_ = clock_->now_us();
  consecutive_timeouts_ = 0;
}

void RingHead::on_result(const ActivationView& a) {
  if (a.h.session_id != session_) return;
  const uint32_t pos = a.h.pos;
  if (already_applied(pos, 1)) return;
  replaying_ = false;
  float* x = model_->x();
  a.copy_to(x);
  const ImageInfo& info = model_->info();
  const uint64_t t0 = clock_->now_us();
  const Status s = model_->run_layers(info.layer_begin, info.layer_end, pos, x);
  counters_.compute_us += clock_->now_us() - t0;
  if (s != Status::kOk) {
    set_error("the head's layers failed at position %u: %s", (unsigned)pos, status_message(s));
    return;
  }
  completed_++;
  last_progress_us_ = clock_->now_us();
  consecutive_timeouts_ = 0;
}

void RingHead::on_need_replay(const NeedReplay& m) {
  if (m.session_id != session_ || m.epoch != epoch_) return;  // stale: already handled
  counters_.need_replay_received++;
  // Positions every stage is known to hold: those all the way round, or during a rebuild
  // those the rebuild has brought back round.
  const uint32_t floor = replaying_ ? replay_ack_ : completed_;
  uint32_t from = m.have < floor ? m.have : floor;
  if (m.have < floor) {
    // The stage lost positions it was known to hold: it rebooted (again, if during a rebuild).
    // A gap during a rebuild (have >= replay_ack_) is a resend, not another replay.
    counters_.replays++;
    counters_.replayed_positions += floor - m.have;
  }
  if (m.have < completed_) {
    replaying_ = true;
    replay_ack_ = from;
  }
  if (next_send_ > from) counters_.retransmissions += next_send_ - from;
  next_send_ = from;
  epoch_++;
  last_progress_us_ = clock_->now_us();
}

bool RingHead::send_position(uint32_t pos) {
  const uint64_t t0 = clock_->now_us();
  model_->embed(tokens_[pos], xbuf_);
  counters_.compute_us += clock_->now_us() - t0;
  ActivationHeader h;
  h.session_id = session_;
  h.pos = pos;
  h.epoch = epoch_;
  h.dest_stage = 1;
  const size_t n =
      encode_activation(h, xbuf_, model_->config().dim, hop_.payload(), hop_.payload_capacity());
  if (!hop_.send((uint8_t)MsgType::kActivation, n)) {
    set_error("cannot write to the link (the next board or cable went away)");
    return false;
  }
  counters_.frames_tx++;
  counters_.positions_sent++;
  return true;
}

bool RingHead::send_chunk(uint32_t pos, uint32_t count) {
  ActivationHeader h;
  h.session_id = session_;
  h.pos = pos;
  h.epoch = epoch_;
  h.dest_stage = 1;
  const uint32_t dim = model_->config().dim;
  uint8_t* out = hop_.payload();
  const size_t n = encode_activation_batch_header(h, count, dim, out, hop_.payload_capacity());
  if (n == 0) {
    set_error("a prompt chunk of %u positions does not fit a frame", (unsigned)count);
    return false;
  }
  // Embedded straight into the frame, one vector at a time through xbuf_.
  const uint64_t t0 = clock_->now_us();
  for (uint32_t i = 0; i < count; i++) {
    model_->embed(tokens_[pos + i], xbuf_);
    store_f32_array(xbuf_, dim, out + kActivationBatchHeaderSize + (size_t)i * dim * 4);
  }
  counters_.compute_us += clock_->now_us() - t0;
  if (!hop_.send((uint8_t)MsgType::kActivationBatch, n)) {
    set_error("cannot write to the link (the next board or cable went away)");
    return false;
  }
  counters_.frames_tx++;
  counters_.positions_sent += count;
  counters_.chunks_sent++;
  return true;
}

Status RingHead::run(uint32_t first, uint32_t end) {
  if (first != completed_) return Status::kBadArgument;
  next_send_ = first;
  last_progress_us_ = clock_->now_us();
  consecutive_timeouts_ = 0;
  while (completed_ < end) {
    if (failed_) return Status::kLinkError;
    const uint32_t ack = replaying_ ? replay_ack_ : completed_;
    // Up to `window` chunks in flight; a chunk of one position goes as a plain ACTIVATION.
    while (next_send_ < end && next_send_ < ack + opts_.window * chunk_) {
      const uint32_t count = end - next_send_ < chunk_ ? end - next_send_ : chunk_;
      if (!(count > 1 ? send_chunk(next_send_, count) : send_position(next_send_)))
        return Status::kLinkError;
      next_send_ += count;
    }
    if (!pump(5)) return Status::kLinkError;
    if (failed_) return Status::kLinkError;
    // Consecutive timeouts of one position wait longer each time (up to 8x): the hops may be
    // repairing a bad line, and resending into it only adds to what they must repair.
    const uint32_t backoff = consecutive_timeouts_ < 3 ? consecutive_timeouts_ : 3;
    if (clock_->now_us() - last_progress_us_ > ((uint64_t)opts_.timeout_ms * 1000) << backoff) {
      counters_.timeouts++;
      if (++consecutive_timeouts_ > opts_.max_retries) {
        set_error(
            "no answer from the ring for position %u after %u tries: check that every board "
            "is powered, each TX goes to the next board's RX, GNDs are joined and all boards "
            "use the same baud rate",
            (unsigned)completed_, (unsigned)opts_.max_retries);
        return Status::kLinkError;
      }
      const uint32_t from = replaying_ ? replay_ack_ : completed_;
      counters_.retransmissions += next_send_ - from;
      next_send_ = from;
      epoch_++;
      last_progress_us_ = clock_->now_us();
    }
  }
  return Status::kOk;
}

Status RingHead::discover(char* msg, size_t cap) {
  if (stages_ == 1) return Status::kOk;
  StageInfo mine =
      stage_info_for(model_->info(), model_->seq_len(), model_->kv_type(), opts_.boot_id);
  // Retry until the deadline, waiting longer each time: a slow or lossy ring still answers,
  // and a ring that is not there is reported after hello_deadline_ms.
  const uint64_t start = clock_->now_us();
  const uint64_t deadline = start + (uint64_t)opts_.hello_deadline_ms * 1000;
  uint64_t wait_us = (uint64_t)opts_.hello_timeout_ms * 1000;
  counters_.hello_attempts = 0;
  got_reply_ = false;
  wait_ = Wait::kHello;
  while (!got_reply_ && clock_->now_us() < deadline) {
    const size_t n = encode_hello(&mine, 1, hop_.payload(), hop_.payload_capacity());
    if (!hop_.send((uint8_t)MsgType::kHello, n)) break;
    counters_.frames_tx++;
    counters_.hello_attempts++;
    const uint64_t t0 = clock_->now_us();
    while (!got_reply_ && clock_->now_us() - t0 < wait_us && clock_->now_us() < deadline) {
      if (!pump(10)) break;
    }
    if (failed_) break;
    wait_us = wait_us * 2 < (uint64_t)opts_.hello_max_wait_ms * 1000
                  ? wait_us * 2
                  : (uint64_t)opts_.hello_max_wait_ms * 1000;
  }
  wait_ = Wait::kNone;
  if (!got_reply_) {
    const FrameCounters& c = hop_.rx_counters();
    snprintf(msg, cap,
             "no answer from the ring: check that every board is powered and flashed, that each "
             "board's TX goes to the next board's RX (the last board's TX to the head's RX), that "
             "GNDs are joined and that all boards use the same baud rate%s",
             hop_.last_foreign_version()
                 ? ""
                 : (c.crc_errors
                        ? " (corrupted frames were received: a baud-rate mismatch or bad wiring)"
                        : ""));
    if (hop_.last_foreign_version()) {
      const size_t len = strlen(msg);
      snprintf(msg + len, cap - len,
               ". Frames of protocol v%u arrived (this head speaks v%u): a board runs other "
               "firmware — flash the same llmwire version on every board",
               (unsigned)hop_.last_foreign_version(), (unsigned)kProtocolVersion);
    }
    return Status::kLinkError;
  }
  // (validate_ring refuses stages whose seq_len differs from the head's: no shortening here.)
  if (!validate_ring(ring_, ring_count_, msg, cap)) return Status::kRingMismatch;
  return Status::kOk;
}

Status RingHead::begin() {
  session_++;
  completed_ = 0;
  next_send_ = 0;
  replaying_ = false;
  failed_ = false;
  error_[0] = 0;
  return Status::kOk;
}

Status RingHead::forward(int32_t token, uint32_t pos, bool need_logits, const float** logits) {
  if (pos >= seq_len_) return Status::kSequenceFull;
  tokens_[pos] = token;
  Status s = Status::kOk;
  if (stages_ == 1) {
    s = model_->embed(token, model_->x());
    if (s == Status::kOk) s = model_->run_layers(0, model_->config().n_layers, pos, model_->x());
    completed_ = pos + 1;
  } else {
    s = run(pos, pos + 1);
  }
  if (s != Status::kOk || !need_logits) return s;
  // Every logit: a head holding every row (the embedding is the classifier) computes them
  // itself, the wires being far slower than its rows; otherwise the ring sends them.
  if (split_classifier_ && model_->classifier_held_end() < model_->config().vocab_size) {
    s = classify_ring(pos, ClassifyMode::kLogits, nullptr);
    if (logits) *logits = model_->logits();
    return s;
  }
  const uint64_t t0 = clock_->now_us();
  s = model_->head(model_->x(), 0, model_->config().vocab_size, model_->logits());
  counters_.compute_us += clock_->now_us() - t0;
  if (logits) *logits = model_->logits();
  return s;
}

Status RingHead::next_token(int32_t token, uint32_t pos, Sampler* sampler, int32_t* next) {
  // A temperature of +inf has no split form (split_softmax_max): the whole vector.
  const float t = sampler->settings().temperature;
  if (!split_classifier_ || (!sampler->greedy() && !(t < f32_from_bits(0x7F800000u))) ||
      sampler->vocab_size() != model_->config().vocab_size) {
    return Forwarder::next_token(token, pos, sampler, next);
  }
  Status s = forward(token, pos, false, nullptr);
  if (s == Status::kOk && !sampler->greedy()) return sample_ring(pos, sampler, next);
  uint32_t arg = 0;
  if (s == Status::kOk) s = classify_ring(pos, ClassifyMode::kMax, &arg);
  *next = (int32_t)arg;
  return s;
}

bool RingHead::send_classify() {
  ClassifyHeader h;
  h.session_id = session_;
  h.pos = cls_pos_;
  h.mode = (uint8_t)cls_mode_;
  const size_t n =
      encode_classify(h, xbuf_, model_->config().dim, hop_.payload(), hop_.payload_capacity());
  if (!hop_.send((uint8_t)MsgType::kClassify, n)) {
    set_error("cannot write to the link (the next board or cable went away)");
    return false;
  }
  counters_.frames_tx++;
  counters_.classify_rounds++;
  return true;
}

Status RingHead::classify_ring(uint32_t pos, ClassifyMode mode, uint32_t* arg) {
  const uint32_t vocab = model_->config().vocab_size;
  const uint32_t own_end = model_->classifier_end();
  float* logits = model_->logits();
  uint64_t t0 = clock_->now_us();
  Status s = model_->final_norm(model_->x(), xbuf_);  // xbuf_ is free: no position in flight
  counters_.compute_us += clock_->now_us() - t0;
  if (s != Status::kOk) return s;
  cls_pos_ = pos;
  cls_mode_ = mode;
  slice_done_ = 0;
  for (uint32_t k = 0; k < stages_; k++) slice_started_[k] = false;
  cls_wait_ = true;
  if (!send_classify()) {
    cls_wait_ = false;
    return Status::kLinkError;
  }
  // The head's own slice while the workers compute theirs.
  t0 = clock_->now_us();
  s = model_->classify(xbuf_, 0, own_end, logits);
  summarize_slice(logits, 0, own_end, &slices_[0]);
  counters_.compute_us += clock_->now_us() - t0;
  if (s != Status::kOk) {
    cls_wait_ = false;
    return s;
  }
  const uint64_t all = (stages_ >= 64 ? ~0ull : (1ull << stages_) - 1) & ~1ull;
  last_progress_us_ = clock_->now_us();
  consecutive_timeouts_ = 0;
  while ((slice_done_ & all) != all) {
    if (failed_ || !pump(5) || failed_) {
      cls_wait_ = false;
      return Status::kLinkError;
    }
    const uint32_t backoff = consecutive_timeouts_ < 3 ? consecutive_timeouts_ : 3;
    if (clock_->now_us() - last_progress_us_ > ((uint64_t)opts_.timeout_ms * 1000) << backoff) {
      counters_.timeouts++;
      if (++consecutive_timeouts_ > opts_.max_retries) {
        set_error(
            "no classifier answer from the ring for position %u after %u tries: every board "
            "must run this firmware version and a stage image from the same split",
            (unsigned)pos, (unsigned)opts_.max_retries);
        cls_wait_ = false;
        return Status::kLinkError;
      }
      if (!send_classify()) {
        cls_wait_ = false;
        return Status::kLinkError;
      }
      last_progress_us_ = clock_->now_us();
    }
  }
  cls_wait_ = false;
  // The slices must tile the vocabulary in ring order, as split wrote them.
  uint32_t cursor = own_end;
  for (uint32_t k = 1; k < stages_; k++) {
    const ClassSlice& m = slices_[k];
    if (m.row_begin == m.row_end) continue;
    if (m.row_begin != cursor) {
      set_error(
          "stage %u computes classifier rows %u-%u but the rows from %u were expected: the "
          "stage images come from different splits; split the model again and flash every "
          "board's new stage image",
          (unsigned)k, (unsigned)m.row_begin, (unsigned)(m.row_end - 1), (unsigned)cursor);
      return Status::kRingMismatch;
    }
    cursor = m.row_end;
  }
  if (cursor != vocab) {
    set_error(
        "the ring's classifier slices cover rows 0-%u of %u: a board holds no slice or a "
        "stage image comes from another split; split the model again and flash every board",
        (unsigned)(cursor - 1), (unsigned)vocab);
    return Status::kRingMismatch;
  }
  if (arg) *arg = merge_argmax(slices_, stages_);
  return Status::kOk;
}

void RingHead::on_class_logits(const ClassLogitsView& v) {
  const uint32_t k = v.h.stage;
  if (!cls_wait_ || cls_mode_ != ClassifyMode::kLogits || v.h.session_id != session_ ||
      v.h.pos != cls_pos_ || k == 0 || k >= stages_ || (slice_done_ >> k) & 1) {
    return;
  }
  const uint32_t first = v.h.first_row;
  if (first < model_->classifier_end() || v.count > model_->config().vocab_size - first) return;
  if (!slice_started_[k]) {
    slice_started_[k] = true;
    slice_first_[k] = slice_next_[k] = first;
  }
  if (first != slice_next_[k]) return;  // a duplicate, or a gap the resend will fill
  load_f32_array(v.data, v.count, model_->logits() + first);
  slice_next_[k] += v.count;
  counters_.logits_rows_rx += v.count;
  last_progress_us_ = clock_->now_us();
  consecutive_timeouts_ = 0;
}

void RingHead::on_class_slice(const ClassSlice& m) {
  const uint32_t k = m.stage;
  if (!cls_wait_ || m.session_id != session_ || m.pos != cls_pos_ || k == 0 || k >= stages_ ||
      (slice_done_ >> k) & 1 || m.row_end > model_->config().vocab_size) {
    return;
  }
  if (cls_mode_ == ClassifyMode::kLogits && m.row_begin < m.row_end &&
      !(slice_started_[k] && slice_first_[k] == m.row_begin && slice_next_[k] == m.row_end)) {
    // Some of its logits were lost: take them again, in order, from the resend.
    slice_started_[k] = true;
    slice_first_[k] = slice_next_[k] = m.row_begin;
    return;
  }
  slices_[k] = m;
  slice_done_ |= 1ull << k;
  last_progress_us_ = clock_->now_us();
  consecutive_timeouts_ = 0;
}

Status RingHead::feed_prompt(const int32_t* tokens, uint32_t n) {
  if (n > seq_len_) return Status::kPromptTooLong;
  for (uint32_t i = 0; i < n; i++) tokens_[i] = tokens[i];
  if (stages_ == 1) {
    const uint32_t chunk = model_->prompt_batch(), dim = model_->config().dim;
    for (uint32_t p = 0; p < n; p += chunk) {
      const uint32_t k = n - p < chunk ? n - p : chunk;
      Status s = Status::kOk;
      if (k == 1) {
        s = model_->embed(tokens[p], model_->x());
        if (s == Status::kOk) s = model_->run_layers(0, model_->config().n_layers, p, model_->x());
      } else {
        for (uint32_t i = 0; i < k && s == Status::kOk; i++) {
          s = model_->embed(tokens[p + i], model_->batch_x() + (size_t)i * dim);
        }
        if (s == Status::kOk)
          s = model_->run_layers_batch(0, model_->config().n_layers, p, k, model_->batch_x());
      }
      if (s != Status::kOk) return s;
    }
    completed_ = n;
    return Status::kOk;
  }
  return run(0, n);
}

Status RingHead::forward_batch(const int32_t* tokens, uint32_t pos, uint32_t n, float* logits,
                               uint32_t vocab) {
  if (stages_ != 1 || n == 1) return Forwarder::forward_batch(tokens, pos, n, logits, vocab);
  if (vocab != model_->config().vocab_size || n > model_->prompt_batch())
    return Status::kBadArgument;
  if (pos + n > seq_len_) return Status::kSequenceFull;
  const uint32_t dim = model_->config().dim;
  Status s = Status::kOk;
  for (uint32_t i = 0; i < n && s == Status::kOk; i++) {
    tokens_[pos + i] = tokens[i];
    s = model_->embed(tokens[i], model_->batch_x() + (size_t)i * dim);
  }
  if (s == Status::kOk)
    s = model_->run_layers_batch(0, model_->config().n_layers, pos, n, model_->batch_x());
  completed_ = pos + n;
  if (s != Status::kOk) return s;
  const uint64_t t0 = clock_->now_us();  // counted like forward(): the classifier
  s = model_->head_batch(model_->batch_x(), n, logits);
  counters_.compute_us += clock_->now_us() - t0;
  return s;
}

Status RingHead::collect_stats(StageStats* out, size_t cap, size_t* n) {
  *n = 0;
  if (stages_ == 1) return Status::kOk;
  stats_out_ = out;
  stats_cap_ = cap;
  for (int attempt = 0; attempt < 5; attempt++) {
    request_id_++;
    wait_ = Wait::kStats;
    got_reply_ = false;
    const size_t len = encode_stats_request(request_id_, hop_.payload(), hop_.payload_capacity());
    if (!hop_.send((uint8_t)MsgType::kStatsRequest, len)) break;
    const uint64_t t0 = clock_->now_us();
    while (!got_reply_ && clock_->now_us() - t0 < (uint64_t)opts_.timeout_ms * 1000) {
      if (!pump(10)) break;
    }
    if (got_reply_) break;
  }
  wait_ = Wait::kNone;
  *n = stats_n_;
  return got_reply_ ? Status::kOk : Status::kLinkError;
}

}  // namespace llmwire
