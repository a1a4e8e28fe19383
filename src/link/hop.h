// Hop-level recovery (docs/PROTOCOL.md "Hop layer"): one board's end of the two hops it
// touches — the RX hop from the previous board and the TX hop to the next. Frames the
// session layer sends are numbered per hop and kept in a small resend buffer; every one is
// followed by a HOP_MARK announcing the next number, so the receiving board sees a lost or
// corrupted frame at once and sends a HOP_NAK forward round the ring to this board, which
// resends from its buffer — only the damaged blocks when the receiver kept the damaged frame
// and the NAK carries its digest. A fault then costs about a frame time instead of the head's
// end-to-end timeout (which stays as the backstop). The receiving side delivers frames to
// the session layer in order and once: duplicates and frames behind a gap are dropped.
//
// Portable: no heap, no exceptions, no OS calls. The caller reads the link and feeds bytes
// (push / tick, like FrameReceiver); the hop writes frames, marks and NAKs to the link.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "link/byte_link.h"
#include "link/frame.h"
#include "link/messages.h"
#include "pipeline/clock.h"

namespace llmwire {

struct HopOptions {
  uint8_t stage_index = 0;  // this board: NAKs naming it are about its TX hop
  uint8_t stage_count = 2;  // boards in the ring: how far a NAK travels
  uint32_t boot_id = 1;     // seeds the first sequence number (differs across boots)
  // A NAK not answered in time is sent again (the NAK or the answer was lost): after 1.5x
  // the hop's measured NAK round trip + 2 ms (at least nak_retry_min_ms), twice as long for
  // each further try, at most nak_retry_ms
  // (nak_retry_ms until a round trip has been measured, and while a partial frame is held).
  // A retry too early costs only a duplicate answer; one too late stalls the ring.
  uint32_t nak_retry_ms = 40;
  uint32_t nak_retry_min_ms = 5;
  // After max_nak_tries NAKs and give_up_ms for one missing frame the hop gives it up (the
  // next frame is taken as it comes) and the head's end-to-end retry recovers what it carried.
  uint32_t max_nak_tries = 32;
  uint32_t give_up_ms = 1000;
  // A hop idle this long after a numbered frame repeats its HOP_MARK (a lost frame whose mark
  // was lost too is still seen), then again after twice as long, ..., at most max_remarks
  // times and at least every remark_max_ms.
  uint32_t remark_ms = 20;
  uint32_t remark_max_ms = 320;
  uint32_t max_remarks = 8;
  // The last repair_bytes of the resend region hold a damaged frame of at most that size to
  // mend with HOP_PATCHes (Hop::repair_bytes); 0: damaged frames are always resent whole.
  uint32_t repair_bytes = 0;
};

struct HopCounters {
  uint32_t frames_sent = 0;     // sequenced frames sent (new, not resends)
  uint32_t frames_resent = 0;   // sequenced frames resent after a NAK, whole or patched
  uint32_t patches_sent = 0;    // of those, resent as a HOP_PATCH of the damaged blocks
  uint32_t mended = 0;          // damaged frames received and mended by HOP_PATCHes
  uint32_t marks_sent = 0;      // HOP_MARK frames sent
  uint32_t naks_sent = 0;       // HOP_NAK frames this board originated
  uint32_t naks_received = 0;   // HOP_NAKs for this board's TX hop
  uint32_t naks_forwarded = 0;  // HOP_NAKs passed on towards another board
  uint32_t delivered = 0;       // sequenced frames delivered to the session layer
  uint32_t duplicates = 0;      // dropped: already delivered
  uint32_t out_of_order = 0;    // dropped: arrived behind a gap (resent in order later)
  uint32_t lost = 0;            // frames the sender could no longer resend (given up)
  uint32_t resyncs = 0;         // sequence restarts adopted (the sender rebooted)
};

// Sequence numbers within this distance ahead of / behind the next expected one are judged
// as gaps / duplicates; farther ones mean the sender restarted its numbering.
constexpr uint16_t kHopSeqWindow = 256;
// Resend buffer entries (frames) at most; the buffer's bytes come from the caller.
constexpr size_t kHopMaxResend = 16;

class Hop final : public FrameSink {
 public:
  Hop() : rx_(this) {}
  Hop(const Hop&) = delete;
  Hop& operator=(const Hop&) = delete;

  // Resend region bytes for a ring of models with width `dim` whose prompt chunks carry up to
  // `batch` positions per frame: six of its largest activation frames and a kilobyte of
  // control frames (HELLO, STATS of a few stages), then repair_bytes(dim, batch).
  static size_t resend_bytes(uint32_t dim, uint32_t batch = 1);
  // Room for one damaged activation frame (HopOptions::repair_bytes).
  static size_t repair_bytes(uint32_t dim, uint32_t batch = 1);
  // The largest activation frame: an ACTIVATION, or an ACTIVATION_BATCH of up to `batch`
  // positions (as many as a frame holds).
  static size_t activation_frame_bytes(uint32_t dim, uint32_t batch);

  // `up` receives the session layer's frames; `frame_buf` holds kMaxFrameSize bytes (frames
  // are built there; free between calls); `resend` / `resend_len` is the resend buffer, its
  // last opts.repair_bytes the repair copy. All outlive the hop.
  void init(ByteLink* link, Clock* clock, FrameSink* up, uint8_t* frame_buf, uint8_t* resend,
            size_t resend_len, const HopOptions& opts);

  // RX: bytes just read from the previous board.
  void push(const uint8_t* data, size_t len);
  // Timers: partial-frame timeout, NAK retry, repeated mark. Call when no bytes arrived.
  void tick();
  // How long a read may wait for bytes before tick() is due (at most `cap`, at least 1 ms),
  // so a NAK retry or a repeated mark goes out on time.
  uint32_t wait_ms(uint32_t cap) const;

  // TX: encode a payload at payload() and send it as a numbered frame (then a HOP_MARK).
  uint8_t* payload() { return buf_ + kFrameHeaderSize; }
  size_t payload_capacity() const { return kMaxPayload; }
  bool send(uint8_t type, size_t payload_len);
  // Sends a received frame on unchanged but for this hop's sequence number.
  bool forward(const Frame& f);

  const FrameCounters& rx_counters() const { return rx_.counters(); }
  uint8_t last_foreign_version() const { return rx_.last_foreign_version(); }
  const HopCounters& counters() const { return counters_; }
  uint16_t next_seq() const { return tx_next_; }

 private:
  struct Entry {
    uint32_t off = 0, len = 0;
  };
  void on_frame(const Frame& f) override;
  void on_damaged(const uint8_t* raw, size_t len) override;
  void on_sequenced(const Frame& f);
  void on_patch(const HopPatchView& p);
  void on_mark(const HopMark& m);
  void on_nak(const HopNak& m);
  void timers();
  // Sends a NAK for rx_next_ unless one went out less than nak_retry() ago (force: always).
  void request(bool force);
  uint32_t nak_retry() const;
  // The outstanding NAK was answered: learn its round trip (first tries only: a retried
  // NAK's answer could be to either try).
  void answered();
  bool write_control(MsgType type, const uint8_t* payload, size_t len);
  bool write_mark(bool answer);
  void arm_remarks();  // a numbered frame went out: repeat its mark while the hop is idle
  void resend_from(const HopNak& nak);
  // Sends the blocks of a kept frame whose check differs from the NAK's digest as one
  // HOP_PATCH; false if the whole frame should go instead.
  bool send_patch(const uint8_t* frame, size_t len, const HopNak& nak);
  bool have_copy() const { return copy_len_ > 0 && copy_seq_ == rx_next_; }
  // Resend buffer.
  void keep(const uint8_t* frame, size_t len);
  void drop_oldest();
  uint16_t oldest_seq() const { return (uint16_t)(tx_next_ - count_); }
  // Garbage seen on the RX hop since the last check that may have been a numbered frame:
  // damaged frames longer than any control frame, oversize lengths, partial-frame timeouts.
  bool saw_garbage();

  ByteLink* link_ = nullptr;
  Clock* clock_ = nullptr;
  FrameSink* up_ = nullptr;
  uint8_t* buf_ = nullptr;
  HopOptions opts_;
  FrameReceiver rx_;
  HopCounters counters_;
  // TX side.
  uint16_t tx_next_ = 0;
  uint8_t* store_ = nullptr;
  size_t store_cap_ = 0;
  Entry entries_[kHopMaxResend];
  size_t first_ = 0, count_ = 0;  // entries_[first_ .. first_+count_) hold tx_next_-count_ ..
  uint32_t last_send_ms_ = 0;
  uint32_t remark_wait_ms_ = 0;
  bool answered_any_ = false;  // a NAK has been answered; last_answered_ is its from_seq
  uint16_t last_answered_ = 0;
  uint32_t remarks_left_ = 0;
  // RX side.
  bool rx_synced_ = false;
  uint16_t rx_next_ = 0;
  bool nak_pending_ = false;  // a NAK for rx_next_ is outstanding
  uint16_t nak_seq_ = 0;
  uint32_t nak_ms_ = 0;
  uint32_t nak_tries_ = 0;
  uint32_t nak_first_ms_ = 0;  // when the first NAK for nak_seq_ went out
  bool abandoned_ = false;     // rx_next_ could not be had: take the next frame as it comes
  uint32_t garbage_seen_ = 0;
  uint32_t long_damaged_ = 0;  // damaged candidates longer than any control frame
  uint32_t rtt_ms_ = 0;        // smoothed NAK round trip (0: none measured yet)
  // The damaged copy of frame copy_seq_ (copy_len_ bytes; 0: none), mended by HOP_PATCHes.
  uint8_t* copy_ = nullptr;
  size_t copy_cap_ = 0, copy_len_ = 0;
  uint16_t copy_seq_ = 0;
};

}  // namespace llmwire
