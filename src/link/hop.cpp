#include "link/hop.h"

#include <string.h>

#include "engine/image_header.h"  // load_u16

namespace llmwire {

size_t Hop::activation_frame_bytes(uint32_t dim, uint32_t batch) {
  const uint32_t most = activation_batch_max_count(dim);
  const size_t one = activation_size(dim);
  const size_t chunk =
      batch > 1 && most > 1 ? activation_batch_size(batch < most ? batch : most, dim) : 0;
  return frame_size(chunk > one ? chunk : one);
}

size_t Hop::resend_bytes(uint32_t dim, uint32_t batch) {
  return 6 * activation_frame_bytes(dim, batch) + frame_size(1024) + repair_bytes(dim, batch);
}

size_t Hop::repair_bytes(uint32_t dim, uint32_t batch) {
  return activation_frame_bytes(dim, batch);
}

void Hop::init(ByteLink* link, Clock* clock, FrameSink* up, uint8_t* frame_buf, uint8_t* resend,
               size_t resend_len, const HopOptions& opts) {
  link_ = link;
  clock_ = clock;
  up_ = up;
  buf_ = frame_buf;
  store_ = resend;
  store_cap_ = resend ? resend_len : 0;
  opts_ = opts;
  copy_ = nullptr;
  copy_cap_ = copy_len_ = 0;
  if (resend && opts.repair_bytes >= kFrameOverhead && opts.repair_bytes < resend_len) {
    copy_cap_ = opts.repair_bytes;
    store_cap_ = resend_len - copy_cap_;
    copy_ = resend + store_cap_;
  }
  if (opts_.stage_count < 2) opts_.stage_count = 2;
  counters_ = HopCounters{};
  // A new boot starts its numbering somewhere else, so the next board does not take its
  // first frames for duplicates of the old boot's.
  tx_next_ = (uint16_t)((opts.boot_id * 2654435761u) >> 16);
  first_ = count_ = 0;
  remarks_left_ = 0;
  answered_any_ = false;
  rx_synced_ = false;
  nak_pending_ = abandoned_ = false;
  nak_tries_ = 0;
  garbage_seen_ = long_damaged_ = rtt_ms_ = 0;
}

// ---- TX ----

void Hop::drop_oldest() {
  first_ = (first_ + 1) % kHopMaxResend;
  count_--;
}

void Hop::keep(const uint8_t* frame, size_t len) {
  if (len > store_cap_) {  // cannot be kept: nothing before it can be resent in order either
    count_ = 0;
    return;
  }
  for (;;) {
    if (count_ == 0) {
      first_ = 0;
      entries_[0] = Entry{0, (uint32_t)len};
      break;
    }
    const Entry& a = entries_[first_];
    const Entry& z = entries_[(first_ + count_ - 1) % kHopMaxResend];
    const size_t end = z.off + z.len;
    size_t off = SIZE_MAX;
    if (count_ < kHopMaxResend) {
      if (z.off >= a.off) {  // the kept bytes do not wrap: room after them or before them
        if (store_cap_ - end >= len) {
          off = end;
        } else if (a.off >= len) {
          off = 0;
        }
      } else if (a.off - end >= len) {  // wrapped: room between the newest and the oldest
        off = end;
      }
    }
    if (off != SIZE_MAX) {
      entries_[(first_ + count_) % kHopMaxResend] = Entry{(uint32_t)off, (uint32_t)len};
      break;
    }
    drop_oldest();
  }
  memcpy(store_ + entries_[(first_ + count_) % kHopMaxResend].off, frame, len);
  count_++;
}

bool Hop::write_control(MsgType type, const uint8_t* payload, size_t len) {
  uint8_t f[kFrameOverhead + kHopNakMaxSize];
  memcpy(f + kFrameHeaderSize, payload, len);
  const size_t n = finish_frame(f, sizeof f, (uint8_t)type, tx_next_, len);
  return n && link_->write(f, n);
}

bool Hop::write_mark(bool answer) {
  HopMark m;
  m.next_seq = tx_next_;
  m.kept = (uint8_t)count_;
  m.flags = answer ? kHopMarkAnswer : 0;
  uint8_t p[kHopMarkSize];
  encode_hop_mark(m, p, sizeof p);
  counters_.marks_sent++;
  return write_control(MsgType::kHopMark, p, sizeof p);
}

bool Hop::send(uint8_t type, size_t payload_len) {
  const size_t n = finish_frame(buf_, kMaxFrameSize, type, tx_next_, payload_len);
  if (n == 0 || !link_->write(buf_, n)) return false;
  tx_next_++;
  keep(buf_, n);
  counters_.frames_sent++;
  arm_remarks();
  return write_mark(false);
}

bool Hop::forward(const Frame& f) {
  if (f.len > kMaxPayload) return false;
  memmove(payload(), f.payload, f.len);
  return send(f.type, f.len);
}

bool Hop::send_patch(const uint8_t* frame, size_t len, const HopNak& nak) {
  if (nak.frame_len != len) return false;  // the copy is not this frame's length: all of it
  const size_t block = (size_t)1 << nak.block_shift;
  const size_t blocks = hop_blocks(len, nak.block_shift);
  size_t first = blocks, last = 0;
  for (size_t b = 0; b < blocks; b++) {
    const size_t lo = b * block;
    const size_t n = len - lo < block ? len - lo : block;
    if (hop_block_check(frame + lo, n) != nak.checks[b]) {
      if (first == blocks) first = b;
      last = b;
    }
  }
  // Every check agrees although the copy is bad (a damaged block whose check still matched,
  // or a mended copy that still fails): only the whole frame can help.
  if (first == blocks) return false;
  const size_t lo = first * block;
  const size_t hi = (last + 1) * block < len ? (last + 1) * block : len;
  if (frame_size(kHopPatchHeaderSize + (hi - lo)) >= len) return false;
  const size_t plen = encode_hop_patch(nak.from_seq, (uint16_t)lo, frame + lo, hi - lo, payload(),
                                       payload_capacity());
  const size_t n = finish_frame(buf_, kMaxFrameSize, (uint8_t)MsgType::kHopPatch, tx_next_, plen);
  if (plen == 0 || n == 0) return false;
  link_->write(buf_, n);
  counters_.patches_sent++;
  return true;
}

void Hop::resend_from(const HopNak& nak) {
  const uint16_t from = nak.from_seq;
  const uint16_t skip = (uint16_t)(from - oldest_seq());
  // Go back N: everything from the first missing frame, since the receiver dropped what came
  // after it. Asked again for the same frame, the line is bad enough that a later frame of
  // the batch would likely be damaged too: send just the one asked for.
  size_t end = count_;
  if (answered_any_ && from == last_answered_ && (size_t)skip < count_) end = skip + 1u;
  answered_any_ = true;
  last_answered_ = from;
  for (size_t i = skip; i < end; i++) {
    const Entry& e = entries_[(first_ + i) % kHopMaxResend];
    counters_.frames_resent++;
    // The receiver holds the first frame damaged: send just the blocks it lacks.
    if (i == skip && nak.frame_len && send_patch(store_ + e.off, e.len, nak)) continue;
    if (!link_->write(store_ + e.off, e.len)) return;
  }
  // The mark closes the answer: what it announces and the receiver lacks was lost again.
  write_mark(true);
  arm_remarks();
}

void Hop::arm_remarks() {
  last_send_ms_ = clock_->now_ms();
  remark_wait_ms_ = opts_.remark_ms;
  remarks_left_ = opts_.max_remarks;
}

// ---- RX ----

bool Hop::saw_garbage() {
  // A damaged mark, NAK or patch (or bytes skipped while hunting) says nothing about the
  // numbered frames: a lost one is shown by the mark after it, so no NAK goes round for them.
  const FrameCounters& c = rx_.counters();
  const uint32_t g = long_damaged_ + c.oversize + c.partial_timeouts;
  if (g == garbage_seen_) return false;
  garbage_seen_ = g;
  return true;
}

void Hop::request(bool force) {
  if (!rx_synced_) return;  // nothing to ask for before the first frame or mark
  const uint32_t now = clock_->now_ms();
  if (nak_pending_ && nak_seq_ == rx_next_) {
    if (nak_tries_ >= opts_.max_nak_tries && now - nak_first_ms_ >= opts_.give_up_ms) {
      abandoned_ = true;  // the head's end-to-end retry takes over
      return;
    }
    if (!force && now - nak_ms_ < nak_retry()) return;
  } else {
    nak_tries_ = 0;
    nak_first_ms_ = now;
  }
  HopNak m;
  m.from_seq = rx_next_;
  m.stage = (uint8_t)((opts_.stage_index + opts_.stage_count - 1) % opts_.stage_count);
  m.ttl = (uint8_t)(opts_.stage_count - 1);
  if (have_copy()) {  // digest of the damaged copy, so the sender sends only what differs
    m.frame_len = (uint16_t)copy_len_;
    m.block_shift = kHopMinBlockShift + 1;  // 32-byte blocks unless that makes too many
    while (hop_blocks(copy_len_, m.block_shift) > kHopMaxBlocks) m.block_shift++;
    const size_t block = (size_t)1 << m.block_shift;
    for (size_t b = 0, lo = 0; lo < copy_len_; b++, lo += block) {
      m.checks[b] = hop_block_check(copy_ + lo, copy_len_ - lo < block ? copy_len_ - lo : block);
    }
  }
  uint8_t p[kHopNakMaxSize];
  const size_t len = encode_hop_nak(m, p, sizeof p);
  write_control(MsgType::kHopNak, p, len);
  // The first NAK for a frame goes twice: it crosses N - 1 hops, and a copy right behind it
  // costs the answer no time, while a lost NAK costs a retry interval.
  if (nak_tries_ == 0) write_control(MsgType::kHopNak, p, len);
  counters_.naks_sent++;
  nak_pending_ = true;
  nak_seq_ = rx_next_;
  nak_ms_ = now;
  nak_tries_++;
}

uint32_t Hop::nak_retry() const {
  // While a partial frame is held (perhaps a false length swallowing what arrives), quick
  // retries would keep the line busy and the partial-frame timeout from ever dropping it.
  if (rtt_ms_ == 0 || rx_.pending() > 0) return opts_.nak_retry_ms;
  uint32_t t = rtt_ms_ + rtt_ms_ / 2 + 2;
  if (t < opts_.nak_retry_min_ms) t = opts_.nak_retry_min_ms;
  // Each further try for the same frame waits twice as long: a board whose receiver holds a
  // false partial frame only drops it after a quiet kInterByteTimeoutMs, which a steady
  // stream of quick NAKs would never leave it.
  for (uint32_t k = 1; k < nak_tries_ && t < opts_.nak_retry_ms; k++) t *= 2;
  return t < opts_.nak_retry_ms ? t : opts_.nak_retry_ms;
}

void Hop::answered() {
  if (nak_pending_ && nak_tries_ == 1) {
    const uint32_t rtt = clock_->now_ms() - nak_ms_ + 1;  // (whole ms: never 0)
    rtt_ms_ = rtt_ms_ ? (3 * rtt_ms_ + rtt + 3) / 4 : rtt;
  }
  nak_pending_ = false;
}

void Hop::on_frame(const Frame& f) {
  if (f.type == (uint8_t)MsgType::kHopNak) {
    HopNak m;
    if (decode_hop_nak(f.payload, f.len, &m) == MsgStatus::kOk) on_nak(m);
  } else if (f.type == (uint8_t)MsgType::kHopMark) {
    HopMark m;
    if (decode_hop_mark(f.payload, f.len, &m) == MsgStatus::kOk) on_mark(m);
  } else if (f.type == (uint8_t)MsgType::kHopPatch) {
    HopPatchView p;
    if (decode_hop_patch(f.payload, f.len, &p) == MsgStatus::kOk) on_patch(p);
  } else {
    on_sequenced(f);
  }
}

void Hop::on_nak(const HopNak& m) {
  if (m.stage == opts_.stage_index) {
    counters_.naks_received++;
    resend_from(m);
  } else if (m.ttl > 1) {  // about another board's TX hop: pass it on
    HopNak fwd = m;
    fwd.ttl--;
    uint8_t p[kHopNakMaxSize];
    write_control(MsgType::kHopNak, p, encode_hop_nak(fwd, p, sizeof p));
    counters_.naks_forwarded++;
  }
}

void Hop::on_mark(const HopMark& m) {
  if (!rx_synced_) {  // the first word from this sender: take its numbering
    rx_synced_ = true;
    rx_next_ = m.next_seq;
    nak_pending_ = false;
    return;
  }
  const uint16_t ahead = (uint16_t)(m.next_seq - rx_next_);
  if (ahead == 0) {  // everything the sender sent has arrived
    if (m.flags & kHopMarkAnswer) answered();
    nak_pending_ = false;
    return;
  }
  if (ahead > kHopSeqWindow) {  // behind us or far ahead: the sender restarted its numbering
    rx_next_ = m.next_seq;
    counters_.resyncs++;
    nak_pending_ = abandoned_ = false;
    return;
  }
  if (abandoned_) {
    counters_.lost += ahead;
    rx_next_ = m.next_seq;
    nak_pending_ = abandoned_ = false;
    return;
  }
  const uint16_t oldest = (uint16_t)(m.next_seq - m.kept);
  const uint16_t lag = (uint16_t)(oldest - rx_next_);
  if (lag != 0 && lag <= ahead) {  // the first missing frames are gone from its buffer
    counters_.lost += lag;
    rx_next_ = oldest;
    abandoned_ = false;
    if (lag == ahead) {
      nak_pending_ = false;
      return;
    }
  }
  // Frames before the mark are missing. Ask at once when this is news: the first sign of
  // the loss, or the answer to our latest NAK (its resend was damaged too). Marks that were
  // already on the way when we asked change nothing; the retry timer covers a lost answer.
  // Answers that come within half a round trip of our latest NAK answer earlier copies (the
  // NAK's own copy, or copies a wire duplicated): asking again for each would multiply the
  // NAKs on the ring every round.
  if (!nak_pending_ || nak_seq_ != rx_next_) {
    request(true);
  } else if (m.flags & kHopMarkAnswer) {
    const uint32_t half_rtt = rtt_ms_ / 2 > 2 ? rtt_ms_ / 2 : 2;
    request(clock_->now_ms() - nak_ms_ >= half_rtt);
  }
}

void Hop::on_damaged(const uint8_t* raw, size_t len) {
  // Keep it if its header (unchecked) names the frame we wait for: whatever is wrong in it,
  // header included, is found by the digest and mended, and the whole frame's CRC decides.
  if (len > frame_size(kHopNakMaxSize)) long_damaged_++;
  if (!copy_ || !rx_synced_ || len > copy_cap_) return;
  const uint8_t type = raw[3];
  if (type == (uint8_t)MsgType::kHopNak || type == (uint8_t)MsgType::kHopMark ||
      type == (uint8_t)MsgType::kHopPatch || load_u16(raw + 4) != rx_next_) {
    return;
  }
  memcpy(copy_, raw, len);
  copy_len_ = len;
  copy_seq_ = rx_next_;
}

void Hop::on_patch(const HopPatchView& p) {
  if (!have_copy() || p.seq != rx_next_ || (size_t)p.offset + p.n > copy_len_) return;
  memcpy(copy_ + p.offset, p.bytes, p.n);
  Frame f;
  // Accepted only as a whole frame with a good CRC-32C: the checks only said where to look.
  if (!parse_frame(copy_, copy_len_, &f) || f.seq != rx_next_) return;
  if (f.type == (uint8_t)MsgType::kHopNak || f.type == (uint8_t)MsgType::kHopMark ||
      f.type == (uint8_t)MsgType::kHopPatch) {
    return;
  }
  counters_.mended++;
  on_sequenced(f);
}

void Hop::on_sequenced(const Frame& f) {
  const uint16_t d = (uint16_t)(f.seq - rx_next_);
  if (!rx_synced_ || (d >= kHopSeqWindow && d <= 65536 - kHopSeqWindow)) {
    if (rx_synced_) counters_.resyncs++;  // a restarted sender (or a new one)
    rx_synced_ = true;
  } else if (d != 0 && d < kHopSeqWindow && abandoned_) {
    counters_.lost += d;  // given up: take this one
  } else if (d != 0) {
    if (d < kHopSeqWindow) {  // frames before this one are missing: they come again in order
      counters_.out_of_order++;
      request(false);
    } else {
      counters_.duplicates++;
    }
    return;
  }
  if (nak_pending_ && nak_seq_ == f.seq) answered();
  rx_next_ = (uint16_t)(f.seq + 1);
  nak_pending_ = abandoned_ = false;
  copy_len_ = 0;  // (the frame may be the copy itself: it stays valid through the call)
  counters_.delivered++;
  if (up_) up_->on_frame(f);
}

void Hop::timers() {
  if (saw_garbage()) request(false);
  const uint32_t now = clock_->now_ms();
  // No retry while a frame is still coming in: it may be the answer, and a long one (a prompt
  // chunk of 8 KB takes 178 ms at 460,800 baud) outlasts any retry interval — each retry
  // would queue another whole resend behind it.
  if (nak_pending_ && now - nak_ms_ >= nak_retry() && !rx_.receiving(now)) request(false);
  if (remarks_left_ > 0 && now - last_send_ms_ >= remark_wait_ms_) {
    remarks_left_--;
    last_send_ms_ = now;
    remark_wait_ms_ =
        remark_wait_ms_ * 2 < opts_.remark_max_ms ? remark_wait_ms_ * 2 : opts_.remark_max_ms;
    write_mark(false);
  }
}

uint32_t Hop::wait_ms(uint32_t cap) const {
  const uint32_t now = clock_->now_ms();
  uint32_t w = cap;
  const auto due = [&](uint32_t since, uint32_t after) {
    const uint32_t gone = now - since;
    const uint32_t left = gone >= after ? 0 : after - gone;
    if (left < w) w = left;
  };
  if (nak_pending_ && !abandoned_) due(nak_ms_, nak_retry());
  if (remarks_left_ > 0) due(last_send_ms_, remark_wait_ms_);
  return w > 0 ? w : 1;
}

void Hop::push(const uint8_t* data, size_t len) {
  rx_.push(data, len, clock_->now_ms());
  // The session layer may have computed for a long time inside that push (a prompt chunk is
  // many positions): what the UART buffered meanwhile arrived on time.
  rx_.resume(clock_->now_ms());
  timers();
}

void Hop::tick() {
  rx_.poll_timeout(clock_->now_ms());
  timers();
}

}  // namespace llmwire
