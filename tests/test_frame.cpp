// Link framing: the frame layout against an independent encoder written here (bitwise
// CRC-32C, byte-by-byte header), the receiver's resync / timeout / rejection rules, and the
// error-detection claims of docs/PROTOCOL.md (every 1-, 2- and 3-bit error is detected).
#include <gtest/gtest.h>
#include <string.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "engine/crc32c.h"
#include "link/frame.h"
#include "link/messages.h"
#include "platform/host/memory_link.h"

using namespace llmwire;

namespace {

// Independent CRC-32C: bitwise, reflected polynomial 0x82F63B78, init/xorout 0xFFFFFFFF.
uint32_t ref_crc32c(const uint8_t* p, size_t n) {
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; i++) {
    c ^= p[i];
    for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
  }
  return ~c;
}

// Independent frame builder: the layout of docs/PROTOCOL.md, written out byte by byte.
std::vector<uint8_t> ref_frame(uint8_t type, uint16_t seq, const std::vector<uint8_t>& payload,
                               uint8_t version = 1) {
  std::vector<uint8_t> f(8 + payload.size() + 4);
  f[0] = 0xA5;
  f[1] = 0x5A;
  f[2] = version;
  f[3] = type;
  f[4] = (uint8_t)(seq & 0xFF);
  f[5] = (uint8_t)(seq >> 8);
  f[6] = (uint8_t)(payload.size() & 0xFF);
  f[7] = (uint8_t)(payload.size() >> 8);
  std::copy(payload.begin(), payload.end(), f.begin() + 8);
  const uint32_t crc = ref_crc32c(f.data() + 2, 6 + payload.size());
  for (int i = 0; i < 4; i++) f[8 + payload.size() + i] = (uint8_t)(crc >> (8 * i));
  return f;
}

struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed) {}
  uint64_t next() {  // splitmix64
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  uint32_t below(uint32_t n) { return (uint32_t)(next() % n); }
};

std::vector<uint8_t> random_bytes(Rng& r, size_t n) {
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = (uint8_t)r.next();
  return v;
}

struct Got {
  uint8_t type;
  uint16_t seq;
  std::vector<uint8_t> payload;
  std::vector<uint8_t> raw;
};

struct Collector : FrameSink {
  std::vector<Got> frames;
  void on_frame(const Frame& f) override {
    frames.push_back({f.type, f.seq, std::vector<uint8_t>(f.payload, f.payload + f.len),
                      std::vector<uint8_t>(f.raw, f.raw + f.raw_len)});
  }
};

// Receivers are 8 KB: keep them off the stack as the board code must.
struct Rx {
  Collector sink;
  std::unique_ptr<FrameReceiver> rx{new FrameReceiver(&sink)};
  void push(const std::vector<uint8_t>& v, uint32_t t = 0) { rx->push(v.data(), v.size(), t); }
  const FrameCounters& c() const { return rx->counters(); }
};

std::vector<uint8_t> cat(std::initializer_list<std::vector<uint8_t>> parts) {
  std::vector<uint8_t> out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

// A ~1 KB ACTIVATION frame (dim 250: 12 + 1000 payload bytes, 1024 on the wire).
std::vector<uint8_t> activation_frame(uint16_t seq, uint32_t dim, uint64_t seed) {
  Rng r(seed);
  std::vector<uint8_t> payload;
  for (uint32_t v : {0xC0FFEEu, 17u}) {
    for (int i = 0; i < 4; i++) payload.push_back((uint8_t)(v >> (8 * i)));
  }
  payload.insert(payload.end(), {3, 0, 1, 0});  // epoch 3, dest_stage 1, flags 0
  for (uint32_t i = 0; i < dim; i++) {
    const float x = (float)((int)r.below(20001) - 10000) / 1000.0f;
    uint32_t u;
    memcpy(&u, &x, 4);
    for (int k = 0; k < 4; k++) payload.push_back((uint8_t)(u >> (8 * k)));
  }
  return ref_frame(2, seq, payload);
}

}  // namespace

TEST(Crc32c, ReferenceMatchesStandardCheckValueAndLibrary) {
  const char* check = "123456789";
  EXPECT_EQ(ref_crc32c((const uint8_t*)check, 9), 0xE3069283u);  // published CRC-32C check
  Rng r(1);
  for (size_t n : {0, 1, 3, 4, 5, 63, 1000, 8201}) {
    auto v = random_bytes(r, n);
    EXPECT_EQ(crc32c(v.data(), v.size()), ref_crc32c(v.data(), v.size())) << n;
  }
}

TEST(Frame, EncodeMatchesIndependentLayout) {
  Rng r(2);
  std::vector<uint8_t> buf(kMaxFrameSize);
  for (size_t n : {(size_t)0, (size_t)1, (size_t)1164, (size_t)2060, kMaxPayload}) {
    auto payload = random_bytes(r, n);
    const uint16_t seq = (uint16_t)r.next();
    const size_t len = encode_frame(6, seq, payload.data(), n, buf.data(), buf.size());
    ASSERT_EQ(len, n + 12);
    EXPECT_EQ(std::vector<uint8_t>(buf.begin(), buf.begin() + len), ref_frame(6, seq, payload));
  }
}

TEST(Frame, EncodeRefusesOversizeAndSmallBuffers) {
  std::vector<uint8_t> payload(kMaxPayload + 1), buf(kMaxFrameSize + 16);
  EXPECT_EQ(encode_frame(2, 0, payload.data(), kMaxPayload + 1, buf.data(), buf.size()), 0u);
  EXPECT_EQ(encode_frame(2, 0, payload.data(), 100, buf.data(), 111), 0u);
  EXPECT_EQ(encode_frame(2, 0, payload.data(), 100, buf.data(), 112), 112u);
  EXPECT_EQ(finish_frame(buf.data(), buf.size(), 2, 0, kMaxPayload + 1), 0u);
}

// The worked example of docs/PROTOCOL.md, written out by hand (CRC from an independent
// Python computation), checked against the encoder and against the bitwise CRC above.
TEST(Frame, WorkedExampleActivationDim4) {
  const std::vector<uint8_t> expected = {
      0xA5, 0x5A, 0x01, 0x02, 0x07, 0x00, 0x1C, 0x00,  // sync, v1, ACTIVATION, seq 7, len 28
      0x01, 0x00, 0x00, 0x00,                          // session_id 1
      0x05, 0x00, 0x00, 0x00,                          // pos 5
      0x02, 0x00, 0x01, 0x00,                          // epoch 2, dest_stage 1, flags 0
      0x00, 0x00, 0x80, 0x3F,                          // 1.0f
      0x00, 0x00, 0x00, 0xC0,                          // -2.0f
      0x00, 0x00, 0x00, 0x3F,                          // 0.5f
      0x00, 0x00, 0x50, 0x40,                          // 3.25f
      0x16, 0xA4, 0x8D, 0x1C,                          // CRC-32C 0x1C8DA416
  };
  // The CRC field is the bitwise CRC-32C of bytes [2, 36).
  const uint32_t crc = ref_crc32c(expected.data() + 2, expected.size() - 6);
  EXPECT_EQ(crc, 0x1C8DA416u);
  EXPECT_EQ(crc, (uint32_t)expected[36] | (uint32_t)expected[37] << 8 |
                     (uint32_t)expected[38] << 16 | (uint32_t)expected[39] << 24);

  uint8_t buf[64];
  ActivationHeader h;
  h.session_id = 1;
  h.pos = 5;
  h.epoch = 2;
  h.dest_stage = 1;
  h.flags = 0;
  const float x[4] = {1.0f, -2.0f, 0.5f, 3.25f};
  const size_t plen = encode_activation(h, x, 4, buf + kFrameHeaderSize, sizeof buf - 8);
  ASSERT_EQ(plen, 28u);
  const size_t n = finish_frame(buf, sizeof buf, (uint8_t)MsgType::kActivation, 7, plen);
  ASSERT_EQ(n, 40u);
  EXPECT_EQ(std::vector<uint8_t>(buf, buf + n), expected);

  Frame f;
  ASSERT_TRUE(parse_frame(expected.data(), expected.size(), &f));
  EXPECT_EQ(f.type, 2);
  EXPECT_EQ(f.seq, 7);
  ActivationView v;
  ASSERT_EQ(decode_activation(f.payload, f.len, &v), MsgStatus::kOk);
  EXPECT_EQ(v.dim, 4u);
  EXPECT_EQ(v.at(3), 3.25f);
}

TEST(Frame, ParseFrameRejectsWrongLengthsAndBadBytes) {
  auto f = ref_frame(3, 9, {1, 2, 3, 4, 5});
  Frame out;
  EXPECT_TRUE(parse_frame(f.data(), f.size(), &out));
  EXPECT_FALSE(parse_frame(f.data(), f.size() - 1, &out));
  auto longer = f;
  longer.push_back(0);
  EXPECT_FALSE(parse_frame(longer.data(), longer.size(), &out));
  auto bad = f;
  bad[10] ^= 0x10;
  EXPECT_FALSE(parse_frame(bad.data(), bad.size(), &out));
  auto v2 = ref_frame(3, 9, {1, 2, 3, 4, 5}, 2);
  EXPECT_FALSE(parse_frame(v2.data(), v2.size(), &out));
}

TEST(Receiver, DeliversFramesWholeAndByteByByte) {
  Rng r(3);
  std::vector<std::vector<uint8_t>> payloads = {
      {}, random_bytes(r, 1), random_bytes(r, 1164), random_bytes(r, kMaxPayload)};
  std::vector<uint8_t> stream;
  for (size_t i = 0; i < payloads.size(); i++) {
    auto f = ref_frame((uint8_t)(i + 1), (uint16_t)(100 + i), payloads[i]);
    stream.insert(stream.end(), f.begin(), f.end());
  }
  for (int mode = 0; mode < 3; mode++) {
    Rx rx;
    if (mode == 0) {
      rx.push(stream);
    } else {
      size_t i = 0;
      while (i < stream.size()) {
        const size_t n = mode == 1 ? 1 : std::min<size_t>(1 + r.below(300), stream.size() - i);
        rx.rx->push(stream.data() + i, n, 0);
        i += n;
      }
    }
    ASSERT_EQ(rx.sink.frames.size(), payloads.size()) << "mode " << mode;
    for (size_t i = 0; i < payloads.size(); i++) {
      EXPECT_EQ(rx.sink.frames[i].type, i + 1);
      EXPECT_EQ(rx.sink.frames[i].seq, 100 + i);
      EXPECT_EQ(rx.sink.frames[i].payload, payloads[i]);
    }
    EXPECT_EQ(rx.c().frames_ok, payloads.size());
    EXPECT_EQ(rx.c().resyncs, 0u);
    EXPECT_EQ(rx.c().crc_errors, 0u);
    EXPECT_EQ(rx.rx->pending(), 0u);
  }
}

TEST(Receiver, TwoFramesBackToBackAtEverySplitPoint) {
  auto a = ref_frame(4, 1, {9, 8, 7, 6});
  auto b = ref_frame(5, 2, {0xA5, 0x5A, 0xA5});  // payload that looks like a sync
  auto s = cat({a, b});
  for (size_t split = 0; split <= s.size(); split++) {
    Rx rx;
    rx.rx->push(s.data(), split, 0);
    rx.rx->push(s.data() + split, s.size() - split, 0);
    ASSERT_EQ(rx.sink.frames.size(), 2u) << split;
    EXPECT_EQ(rx.sink.frames[0].raw, a);
    EXPECT_EQ(rx.sink.frames[1].raw, b);
  }
}

// Flip every bit of a ~1 KB ACTIVATION frame, one at a time, and send a good frame after it:
// the corrupted frame must never be delivered, the good one always.
TEST(Receiver, EverySingleBitErrorIsDetected) {
  const auto bad_src = activation_frame(1, 250, 4);
  const auto good = activation_frame(2, 250, 5);
  ASSERT_EQ(bad_src.size(), 1024u);
  Rx rx;
  uint32_t t = 0;
  for (size_t bit = 0; bit < bad_src.size() * 8; bit++) {
    auto bad = bad_src;
    bad[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    const size_t before = rx.sink.frames.size();
    const auto errors_before = rx.c().crc_errors + rx.c().oversize + rx.c().partial_timeouts;
    rx.push(bad, t);
    rx.push(good, t);
    // A flipped length bit may make the bad header claim more bytes than follow: the gap
    // timeout then releases the good frame (found behind the false header).
    t += 100;
    rx.rx->poll_timeout(t);
    ASSERT_EQ(rx.sink.frames.size(), before + 1) << "bit " << bit;
    ASSERT_EQ(rx.sink.frames.back().raw, good) << "bit " << bit;
    if (bit >= 16) {  // past the sync: rejected as a bad frame, not merely not found
      ASSERT_GT(rx.c().crc_errors + rx.c().oversize + rx.c().partial_timeouts, errors_before)
          << "bit " << bit;
    }
    ASSERT_EQ(rx.rx->pending(), 0u);
  }
  EXPECT_EQ(rx.c().frames_ok, bad_src.size() * 8);
  EXPECT_EQ(rx.c().version_mismatch, 0u);
}

// Exhaustive proof of the Hamming distance claimed in the doc for the dim-288 and dim-512
// frames: CRC-32C is linear, so an error pattern goes undetected iff the XOR of its bits'
// syndromes is zero. All syndromes nonzero and distinct = every 1- and 2-bit error caught;
// no s_i ^ s_j equal to a third syndrome = every 3-bit error caught.
TEST(Receiver, AllOneTwoAndThreeBitErrorsDetectedInActivationFrames) {
  for (uint32_t dim : {288u, 512u}) {
    const size_t frame_len = 12 + 12 + 4 * dim;  // 1176 / 2072 bytes
    const size_t covered = frame_len - 6;        // version .. payload
    std::vector<uint8_t> zero(covered, 0);
    const uint32_t base = crc32c(zero.data(), covered);
    std::vector<uint32_t> syn;
    for (size_t bit = 0; bit < covered * 8; bit++) {
      zero[bit / 8] ^= (uint8_t)(1u << (bit % 8));
      syn.push_back(crc32c(zero.data(), covered) ^ base);
      zero[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    }
    for (int k = 0; k < 32; k++) syn.push_back(1u << k);  // bits of the CRC field itself
    // Open-addressing set of syndromes.
    const size_t cap = 1u << 16;
    ASSERT_LT(syn.size() * 2, cap);
    std::vector<uint32_t> table(cap, 0);
    auto slot = [&](uint32_t s) { return (size_t)((s * 0x9E3779B1u) >> 16) & (cap - 1); };
    for (uint32_t s : syn) {
      ASSERT_NE(s, 0u) << "a 1-bit error would go undetected";
      size_t i = slot(s);
      while (table[i] != 0) {
        ASSERT_NE(table[i], s) << "a 2-bit error would go undetected";
        i = (i + 1) & (cap - 1);
      }
      table[i] = s;
    }
    uint64_t triples_hit = 0;
    for (size_t a = 0; a < syn.size(); a++) {
      for (size_t b = a + 1; b < syn.size(); b++) {
        const uint32_t x = syn[a] ^ syn[b];
        size_t i = slot(x);
        while (table[i] != 0) {
          if (table[i] == x) triples_hit++;
          i = (i + 1) & (cap - 1);
        }
      }
    }
    EXPECT_EQ(triples_hit, 0u) << "dim " << dim << ": some 3-bit error goes undetected";
    EXPECT_EQ(syn.size(), frame_len * 8 - 16);  // every bit but the sync
  }
}

TEST(Receiver, RandomBytesNeverYieldAFrame) {
  Rx rx;
  Rng r(6);
  const size_t total = 10u << 20;
  std::vector<uint8_t> chunk(4096);
  size_t sent = 0;
  uint32_t t = 0;
  while (sent < total) {
    const size_t n = 1 + r.below((uint32_t)chunk.size());
    for (size_t i = 0; i < n; i++) chunk[i] = (uint8_t)r.next();
    rx.rx->push(chunk.data(), n, t);
    sent += n;
    t += r.below(4) == 0 ? 25 : 1;  // sometimes a gap long enough to time out
    rx.rx->poll_timeout(t);
  }
  EXPECT_EQ(rx.sink.frames.size(), 0u);
  EXPECT_EQ(rx.c().frames_ok, 0u);
  EXPECT_EQ(rx.c().version_mismatch, 0u);
  // About one false sync every 64 KB: they were seen and rejected.
  EXPECT_GT(rx.c().crc_errors + rx.c().oversize + rx.c().partial_timeouts, 50u);
  EXPECT_GT(rx.c().resyncs, total - 64 * 1024);
}

TEST(Receiver, FindsFrameAfterGarbage) {
  Rng r(7);
  auto good = ref_frame(2, 5, random_bytes(r, 300));
  auto garbage = random_bytes(r, 5000);
  for (auto& b : garbage) {
    if (b == 0xA5) b = 0x00;  // garbage without a sync: every byte is skipped
  }
  Rx rx;
  rx.push(cat({garbage, good}));
  ASSERT_EQ(rx.sink.frames.size(), 1u);
  EXPECT_EQ(rx.sink.frames[0].raw, good);
  EXPECT_EQ(rx.c().resyncs, garbage.size());
}

TEST(Receiver, FindsFrameAfterPartialFrame) {
  Rng r(8);
  auto first = activation_frame(1, 250, 9);
  auto good = activation_frame(2, 250, 10);
  std::vector<uint8_t> partial(first.begin(), first.begin() + 500);  // sender reset mid-frame
  Rx rx;
  rx.push(cat({partial, good}));
  ASSERT_EQ(rx.sink.frames.size(), 1u);
  EXPECT_EQ(rx.sink.frames[0].raw, good);
  EXPECT_EQ(rx.c().crc_errors, 1u);  // the partial frame swallowed part of the good one
}

TEST(Receiver, FindsFrameAfterFalseSyncs) {
  auto good = ref_frame(7, 3, {'h', 'i'});
  // A5 5A followed by junk that claims a short payload; A5 A5 5A; A5 then not 5A.
  std::vector<uint8_t> junk = {0xA5, 0x5A, 0x01, 0x02, 0x00, 0x00, 0x03, 0x00, 0x11,
                               0x22, 0x33, 0xDE, 0xAD, 0xBE, 0xEF, 0xA5, 0x00, 0xA5};
  Rx rx;
  rx.push(cat({junk, good}));
  ASSERT_EQ(rx.sink.frames.size(), 1u);
  EXPECT_EQ(rx.sink.frames[0].raw, good);
  EXPECT_EQ(rx.c().crc_errors, 1u);

  // A false header claiming 2000 bytes, with the real frame inside its claimed length.
  Rng r(11);
  std::vector<uint8_t> false_hdr = {0xA5, 0x5A, 0x01, 0x02, 0x00, 0x00, 0xD0, 0x07};
  Rx rx2;
  rx2.push(cat({false_hdr, good, random_bytes(r, 3000)}));
  ASSERT_EQ(rx2.sink.frames.size(), 1u);
  EXPECT_EQ(rx2.sink.frames[0].raw, good);

  // The same false header, the real frame, then silence: the gap timeout releases it.
  Rx rx3;
  rx3.push(cat({false_hdr, good}), 1000);
  EXPECT_EQ(rx3.sink.frames.size(), 0u);
  rx3.rx->poll_timeout(1000 + kInterByteTimeoutMs + 1);
  ASSERT_EQ(rx3.sink.frames.size(), 1u);
  EXPECT_EQ(rx3.sink.frames[0].raw, good);
  EXPECT_EQ(rx3.c().partial_timeouts, 1u);
}

TEST(Receiver, SyncAfterRepeatedA5) {
  auto good = ref_frame(1, 1, {1, 2, 3});
  Rx rx;
  rx.push(cat({{0xA5, 0xA5, 0xA5}, good}));  // A5 A5 A5 A5 5A ...
  ASSERT_EQ(rx.sink.frames.size(), 1u);
  EXPECT_EQ(rx.c().resyncs, 3u);
}

TEST(Receiver, OversizeLengthRejectedImmediately) {
  Rx rx;
  // len = 8193: rejected as soon as the header is complete, not after 8 KB.
  std::vector<uint8_t> hdr = {0xA5, 0x5A, 0x01, 0x02, 0x00, 0x00, 0x01, 0x20};
  rx.push(hdr);
  EXPECT_EQ(rx.c().oversize, 1u);
  EXPECT_EQ(rx.rx->pending(), 0u);
  auto good = ref_frame(2, 1, {4, 5, 6});
  rx.push(cat({{0xA5, 0x5A, 0x01, 0x02, 0x00, 0x00, 0xFF, 0xFF}, good}));
  EXPECT_EQ(rx.c().oversize, 2u);
  ASSERT_EQ(rx.sink.frames.size(), 1u);
  EXPECT_EQ(rx.sink.frames[0].raw, good);
  // Exactly kMaxPayload is fine.
  auto max = ref_frame(2, 2, std::vector<uint8_t>(kMaxPayload, 0x5A));
  rx.push(max);
  ASSERT_EQ(rx.sink.frames.size(), 2u);
  EXPECT_EQ(rx.c().oversize, 2u);
}

TEST(Receiver, InterByteTimeoutDropsPartialFrame) {
  auto f = activation_frame(1, 250, 12);
  auto good = activation_frame(2, 250, 13);
  Rx rx;
  rx.rx->push(f.data(), 600, 100);
  EXPECT_FALSE(rx.rx->poll_timeout(100 + kInterByteTimeoutMs));  // gap == timeout: keep
  EXPECT_EQ(rx.rx->pending(), 600u);
  EXPECT_TRUE(rx.rx->poll_timeout(100 + kInterByteTimeoutMs + 1));
  EXPECT_EQ(rx.rx->pending(), 0u);
  EXPECT_EQ(rx.c().partial_timeouts, 1u);
  rx.rx->push(f.data() + 600, f.size() - 600, 130);  // the rest, too late: not a frame
  EXPECT_EQ(rx.sink.frames.size(), 0u);
  rx.push(good, 131);
  ASSERT_EQ(rx.sink.frames.size(), 1u);
  EXPECT_EQ(rx.sink.frames[0].raw, good);

  // Slow but steady bytes (gaps below the timeout) keep the frame alive.
  Rx slow;
  uint32_t t = 0;
  for (size_t i = 0; i < f.size(); i += 100) {
    slow.rx->push(f.data() + i, std::min<size_t>(100, f.size() - i), t);
    t += kInterByteTimeoutMs;
    slow.rx->poll_timeout(t);
  }
  ASSERT_EQ(slow.sink.frames.size(), 1u);

  // A caller that never polls: push() itself drops the stale partial frame first.
  Rx lazy;
  lazy.rx->push(f.data(), 600, 0);
  lazy.push(good, 1000);
  ASSERT_EQ(lazy.sink.frames.size(), 1u);
  EXPECT_EQ(lazy.sink.frames[0].raw, good);
  EXPECT_EQ(lazy.c().partial_timeouts, 1u);

  // The clock wraps.
  Rx wrap;
  wrap.rx->push(f.data(), 600, 0xFFFFFFF0u);
  EXPECT_FALSE(wrap.rx->poll_timeout(0x00000002u));
  wrap.rx->push(f.data() + 600, f.size() - 600, 0x00000003u);
  EXPECT_EQ(wrap.sink.frames.size(), 1u);
}

TEST(Receiver, ForeignVersionCountedNotDelivered) {
  Rx rx;
  auto v2 = ref_frame(2, 1, {1, 2, 3, 4}, 2);
  auto good = ref_frame(2, 2, {1, 2, 3, 4});
  rx.push(cat({v2, good}));
  ASSERT_EQ(rx.sink.frames.size(), 1u);
  EXPECT_EQ(rx.sink.frames[0].raw, good);
  EXPECT_EQ(rx.c().version_mismatch, 1u);
  EXPECT_EQ(rx.rx->last_foreign_version(), 2);
  // A corrupted v2 frame is a CRC error, not evidence of a v2 peer.
  auto bad = ref_frame(2, 1, {1, 2, 3, 4}, 3);
  bad[9] ^= 1;
  rx.push(bad);
  EXPECT_EQ(rx.c().version_mismatch, 1u);
  EXPECT_EQ(rx.c().crc_errors, 1u);
  EXPECT_EQ(rx.rx->last_foreign_version(), 2);
}

TEST(FrameWriter, NumbersFramesAndWrapsSeq) {
  auto wire = std::make_unique<MemoryLinkPair<1 << 16>>();
  std::vector<uint8_t> buf(kMaxFrameSize);
  FrameWriter w(&wire->a, buf.data(), buf.size());
  EXPECT_EQ(w.payload_capacity(), kMaxPayload);
  w.set_next_seq(0xFFFE);
  const uint8_t p[3] = {1, 2, 3};
  for (int i = 0; i < 3; i++) ASSERT_TRUE(w.send(4, p, 3));
  const size_t n = encode_reset(0xAABBCCDD, w.payload(), w.payload_capacity());
  ASSERT_TRUE(w.send((uint8_t)MsgType::kReset, n));
  EXPECT_FALSE(w.send(4, kMaxPayload + 1));
  EXPECT_EQ(w.next_seq(), 2);

  Rx rx;
  std::vector<uint8_t> in(1 << 16);
  rx.rx->push(in.data(), wire->b.read(in.data(), in.size(), 0), 0);
  ASSERT_EQ(rx.sink.frames.size(), 4u);
  EXPECT_EQ(rx.sink.frames[0].seq, 0xFFFE);
  EXPECT_EQ(rx.sink.frames[1].seq, 0xFFFF);
  EXPECT_EQ(rx.sink.frames[2].seq, 0x0000);
  EXPECT_EQ(rx.sink.frames[0].raw, ref_frame(4, 0xFFFE, {1, 2, 3}));
  EXPECT_EQ(rx.sink.frames[3].raw, ref_frame(4, 1, {0xDD, 0xCC, 0xBB, 0xAA}));

  // A small buffer limits the payload.
  uint8_t small[40];
  FrameWriter ws(&wire->a, small, sizeof small);
  EXPECT_EQ(ws.payload_capacity(), 28u);
  EXPECT_FALSE(ws.send(2, 29));
}
