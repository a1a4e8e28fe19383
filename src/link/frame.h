// Link framing (docs/PROTOCOL.md "Framing"): the only code that knows the frame layout.
//
//   offset 0      sync  A5 5A
//          2      version u8 (kProtocolVersion)
//          3      type u8 (MsgType)
//          4      seq u16 LE      per-link counter, wraps
//          6      len u16 LE      payload bytes, <= kMaxPayload
//          8      payload[len]
//          8+len  CRC-32C u32 LE  over bytes [2, 8+len) (version .. payload)
//
// Portable: no heap, no exceptions, no OS calls, alignment-safe.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "link/byte_link.h"

namespace llmwire {

constexpr uint8_t kSync0 = 0xA5;
constexpr uint8_t kSync1 = 0x5A;
constexpr uint8_t kProtocolVersion = 1;
constexpr size_t kFrameHeaderSize = 8;
constexpr size_t kFrameCrcSize = 4;
constexpr size_t kFrameOverhead = kFrameHeaderSize + kFrameCrcSize;
constexpr size_t kMaxPayload = 8192;
constexpr size_t kMaxFrameSize = kFrameOverhead + kMaxPayload;  // 8204
// A partial frame is dropped when no byte has arrived for longer than this (a gap timeout,
// independent of the frame's length or the baud rate).
constexpr uint32_t kInterByteTimeoutMs = 20;

// Bytes a frame with `payload_len` payload bytes occupies on the wire.
constexpr size_t frame_size(size_t payload_len) {
  return kFrameOverhead + payload_len;
}

// A received (or decoded) frame. `payload` points into the receiver's buffer and is valid
// only during the FrameSink callback; `raw` is the whole frame, sync to CRC.
struct Frame {
  uint8_t version = 0;
  uint8_t type = 0;
  uint16_t seq = 0;
  uint16_t len = 0;
  const uint8_t* payload = nullptr;
  const uint8_t* raw = nullptr;
  size_t raw_len = 0;
};

// Writes header and CRC around a payload that is already at frame[kFrameHeaderSize ..
// kFrameHeaderSize + payload_len) (encode messages straight into the frame buffer: no copy).
// Returns the frame size, or 0 if payload_len > kMaxPayload or the frame does not fit `cap`.
size_t finish_frame(uint8_t* frame, size_t cap, uint8_t type, uint16_t seq, size_t payload_len);

// Copies `payload` (may be null when len is 0; may overlap out) into `out` and frames it.
// Returns the frame size or 0 (too big / does not fit).
size_t encode_frame(uint8_t type, uint16_t seq, const uint8_t* payload, size_t len, uint8_t* out,
                    size_t cap);

// Checks one complete frame in memory (exactly `len` bytes: sync, header, payload, CRC, and
// version == kProtocolVersion). Fills *out on success. For tests and tools; the receiver
// below is what reads a byte stream.
bool parse_frame(const uint8_t* data, size_t len, Frame* out);

// Called by FrameReceiver for every good frame. The frame's pointers are valid only during
// the call; do not call back into the same receiver's push()/poll_timeout() from it.
class FrameSink {
 public:
  virtual void on_frame(const Frame& frame) = 0;
  // Called for every complete candidate frame whose CRC did not match (sync and a length
  // within kMaxPayload, `len` bytes sync to CRC; the header may be damaged too), before the
  // receiver looks for a frame inside it. Nothing in it may be trusted; the hop layer keeps
  // a copy to mend (docs/PROTOCOL.md "Block repair").
  virtual void on_damaged(const uint8_t* raw, size_t len) {
    (void)raw;
    (void)len;
  }

 protected:
  ~FrameSink() = default;  // not deleted through the interface: no operator delete on MCUs
};

struct FrameCounters {
  uint32_t frames_ok = 0;         // delivered to the sink
  uint32_t crc_errors = 0;        // complete candidate frames whose CRC did not match
  uint32_t oversize = 0;          // headers with len > kMaxPayload (rejected at once)
  uint32_t version_mismatch = 0;  // CRC-valid frames of another protocol version (dropped)
  uint32_t resyncs = 0;           // bytes skipped while hunting for a sync
  uint32_t partial_timeouts = 0;  // partial frames dropped by the inter-byte timeout
};

// Byte-stream receiver: hunts for A5 5A, reads the header, rejects oversize lengths at once,
// reads payload + CRC, and on any rejection resumes the hunt at the byte after the rejected
// sync, so a real frame hidden inside garbage or a false frame is still found.
// Never blocks, never allocates: one member buffer of kMaxFrameSize bytes (~8.2 KB; keep the
// object off small task stacks: make it static or a member of a long-lived object).
class FrameReceiver {
 public:
  explicit FrameReceiver(FrameSink* sink) : sink_(sink) {}
  FrameReceiver(const FrameReceiver&) = delete;
  FrameReceiver& operator=(const FrameReceiver&) = delete;

  // Feeds bytes received at time now_ms (any monotonic millisecond clock; wrap-safe).
  // Calls the sink once per good frame, in stream order.
  void push(const uint8_t* data, size_t len, uint32_t now_ms);
  // Drops a partial frame if no byte arrived for more than kInterByteTimeoutMs. Any complete
  // frame found in the dropped bytes (behind a false sync) is still delivered.
  // Returns true if something was dropped.
  bool poll_timeout(uint32_t now_ms);
  // Forgets any partial frame (counters are kept).
  void reset() { n_ = 0; }
  // The caller was busy (not reading) until now_ms: bytes that waited in the link's buffer
  // meanwhile are not a stalled sender, so the gap of a partial frame counts from here.
  void resume(uint32_t now_ms) { last_byte_ms_ = now_ms; }

  const FrameCounters& counters() const { return counters_; }
  // Version byte of the last CRC-valid frame whose version was not ours (0: none seen), so
  // the session layer can say "peer speaks protocol v2".
  uint8_t last_foreign_version() const { return last_foreign_version_; }
  // Bytes of an incomplete frame being held (0 while hunting).
  size_t pending() const { return n_; }
  // A frame is coming in: part of one is held and its last byte came no more than the
  // inter-byte timeout before now_ms.
  bool receiving(uint32_t now_ms) const {
    return n_ > 0 && (uint32_t)(now_ms - last_byte_ms_) <= kInterByteTimeoutMs;
  }

 private:
  // Bytes still needed before the buffered prefix can be judged further.
  size_t want() const;
  // Judges the buffered bytes: delivers complete frames, rejects bad prefixes, until the
  // buffer is empty or holds a valid incomplete prefix.
  void advance();
  // Removes the first k bytes, then skips to the next A5 among the rest.
  void discard(size_t k);

  FrameSink* sink_;
  FrameCounters counters_;
  uint32_t last_byte_ms_ = 0;
  uint8_t last_foreign_version_ = 0;
  size_t n_ = 0;
  uint8_t buf_[kMaxFrameSize];
};

// Frames payloads into a caller-provided buffer (>= kMaxFrameSize bytes for any payload) and
// writes them to a ByteLink, numbering them with a per-link sequence counter that wraps.
// Usage: n = encode_activation(..., w.payload(), w.payload_capacity()); w.send(type, n);
class FrameWriter {
 public:
  FrameWriter(ByteLink* link, uint8_t* buf, size_t cap) : link_(link), buf_(buf), cap_(cap) {}
  uint8_t* payload() { return buf_ + kFrameHeaderSize; }
  size_t payload_capacity() const;
  // Frames the payload already at payload() and writes it. False if too big or the link
  // failed. The sequence number advances only when a frame is written.
  bool send(uint8_t type, size_t payload_len);
  // Copies then sends (payload must not be inside this writer's buffer).
  bool send(uint8_t type, const uint8_t* payload, size_t len);
  // Writes bytes already framed elsewhere (e.g. forwarding a frame unchanged); no seq change.
  bool send_raw(const uint8_t* frame, size_t len) { return link_->write(frame, len); }
  uint16_t next_seq() const { return seq_; }
  void set_next_seq(uint16_t s) { seq_ = s; }
  // Bytes of the last frame built (valid until the next send).
  const uint8_t* last_frame() const { return buf_; }
  size_t last_frame_size() const { return last_size_; }

 private:
  ByteLink* link_;
  uint8_t* buf_;
  size_t cap_;
  size_t last_size_ = 0;
  uint16_t seq_ = 0;
};

}  // namespace llmwire
