#include "link/frame.h"

#include <string.h>

#include "engine/crc32c.h"
#include "engine/image_header.h"  // load_u16/load_u32/store_*

namespace llmwire {

size_t finish_frame(uint8_t* frame, size_t cap, uint8_t type, uint16_t seq, size_t payload_len) {
  if (!frame || payload_len > kMaxPayload || cap < frame_size(payload_len)) return 0;
  frame[0] = kSync0;
  frame[1] = kSync1;
  frame[2] = kProtocolVersion;
  frame[3] = type;
  store_u16(frame + 4, seq);
  store_u16(frame + 6, (uint16_t)payload_len);
  const size_t covered = kFrameHeaderSize - 2 + payload_len;
  store_u32(frame + kFrameHeaderSize + payload_len, crc32c(frame + 2, covered));
  return frame_size(payload_len);
}

size_t encode_frame(uint8_t type, uint16_t seq, const uint8_t* payload, size_t len, uint8_t* out,
                    size_t cap) {
  if (!out || len > kMaxPayload || cap < frame_size(len)) return 0;
  if (len > 0) {
    if (!payload) return 0;
    if (payload != out + kFrameHeaderSize) memmove(out + kFrameHeaderSize, payload, len);
  }
  return finish_frame(out, cap, type, seq, len);
}

bool parse_frame(const uint8_t* data, size_t len, Frame* out) {
  if (!data || len < kFrameOverhead) return false;
  if (data[0] != kSync0 || data[1] != kSync1) return false;
  const size_t plen = load_u16(data + 6);
  if (plen > kMaxPayload || len != frame_size(plen)) return false;
  if (crc32c(data + 2, kFrameHeaderSize - 2 + plen) != load_u32(data + kFrameHeaderSize + plen)) {
    return false;
  }
  if (data[2] != kProtocolVersion) return false;
  if (out) {
    out->version = data[2];
    out->type = data[3];
    out->seq = load_u16(data + 4);
    out->len = (uint16_t)plen;
    out->payload = data + kFrameHeaderSize;
    out->raw = data;
    out->raw_len = len;
  }
  return true;
}

// ---- FrameReceiver ----
//
// Invariant between calls: buf_[0, n_) is empty or an incomplete prefix that could still be a
// frame: buf_[0] == A5, buf_[1] == 5A (if n_ >= 2), len <= kMaxPayload (if n_ >= 8).
// While advance() runs, the buffer may hold more than one frame's worth (after a rejection,
// the bytes behind the rejected sync are re-examined from the buffer).

size_t FrameReceiver::want() const {
  if (n_ < 2) return 2 - n_;
  if (n_ < kFrameHeaderSize) return kFrameHeaderSize - n_;
  return frame_size(load_u16(buf_ + 6)) - n_;
}

void FrameReceiver::discard(size_t k) {
  if (k > n_) k = n_;
  size_t next = n_;
  if (k < n_) {
    const void* p = memchr(buf_ + k, kSync0, n_ - k);
    if (p) next = (size_t)(static_cast<const uint8_t*>(p) - buf_);
  }
  counters_.resyncs += (uint32_t)(next - k);
  n_ -= next;
  if (n_ > 0) memmove(buf_, buf_ + next, n_);
}

void FrameReceiver::advance() {
  while (n_ > 0) {
    if (n_ >= 2 && buf_[1] != kSync1) {  // A5 not followed by 5A (A5 A5 5A re-syncs here)
      counters_.resyncs++;
      discard(1);
      continue;
    }
    if (n_ < kFrameHeaderSize) return;
    const size_t plen = load_u16(buf_ + 6);
    if (plen > kMaxPayload) {  // rejected at once: never wait for bytes that cannot fit
      counters_.oversize++;
      counters_.resyncs++;
      discard(1);
      continue;
    }
    const size_t total = frame_size(plen);
    if (n_ < total) return;
    const uint32_t crc = crc32c(buf_ + 2, kFrameHeaderSize - 2 + plen);
    if (crc != load_u32(buf_ + kFrameHeaderSize + plen)) {
      counters_.crc_errors++;
      counters_.resyncs++;
      if (sink_) sink_->on_damaged(buf_, total);
      discard(1);  // a real frame may start inside the bytes we took for this one
      continue;
    }
    if (buf_[2] != kProtocolVersion) {  // a genuine frame, in a protocol we do not speak
      counters_.version_mismatch++;
      last_foreign_version_ = buf_[2];
      discard(total);
      continue;
    }
    counters_.frames_ok++;
    if (sink_) {
      Frame f;
      f.version = buf_[2];
      f.type = buf_[3];
      f.seq = load_u16(buf_ + 4);
      f.len = (uint16_t)plen;
      f.payload = buf_ + kFrameHeaderSize;
      f.raw = buf_;
      f.raw_len = total;
      sink_->on_frame(f);
    }
    discard(total);
  }
}

void FrameReceiver::push(const uint8_t* data, size_t len, uint32_t now_ms) {
  if (!data || len == 0) return;
  // A caller that polls the timeout rarely still gets stale partial frames dropped first.
  poll_timeout(now_ms);
  last_byte_ms_ = now_ms;
  while (len > 0) {
    if (n_ == 0) {  // hunting: skip straight through the caller's bytes
      const void* p = memchr(data, kSync0, len);
      const size_t skip = p ? (size_t)(static_cast<const uint8_t*>(p) - data) : len;
      counters_.resyncs += (uint32_t)skip;
      data += skip;
      len -= skip;
      if (len == 0) return;
    }
    size_t take = want();
    if (take > len) take = len;
    memcpy(buf_ + n_, data, take);
    n_ += take;
    data += take;
    len -= take;
    advance();
  }
}

bool FrameReceiver::poll_timeout(uint32_t now_ms) {
  if (n_ == 0 || (uint32_t)(now_ms - last_byte_ms_) <= kInterByteTimeoutMs) return false;
  counters_.partial_timeouts++;
  // Drop the stale candidate but look behind its sync: a complete frame may be hiding there
  // (a false sync swallowed it). Whatever is still incomplete is just as stale: drop it too.
  while (n_ > 0) {
    counters_.resyncs++;
    discard(1);
    advance();
  }
  return true;
}

// ---- FrameWriter ----

size_t FrameWriter::payload_capacity() const {
  if (!buf_ || cap_ < kFrameOverhead) return 0;
  const size_t c = cap_ - kFrameOverhead;
  return c < kMaxPayload ? c : kMaxPayload;
}

bool FrameWriter::send(uint8_t type, size_t payload_len) {
  const size_t n = finish_frame(buf_, cap_, type, seq_, payload_len);
  if (n == 0) return false;
  last_size_ = n;
  if (!link_ || !link_->write(buf_, n)) return false;
  seq_++;
  return true;
}

bool FrameWriter::send(uint8_t type, const uint8_t* payload, size_t len) {
  if (len > payload_capacity() || (len > 0 && !payload)) return false;
  if (len > 0) memmove(buf_ + kFrameHeaderSize, payload, len);
  return send(type, len);
}

}  // namespace llmwire
