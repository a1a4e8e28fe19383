// The hop layer on its own: rings of Hop objects joined by in-memory wires that corrupt,
// drop and duplicate whole writes (a frame, a mark or a NAK), driven by a fake clock. Every
// frame the first board sends must arrive at the end exactly once and in order, and faults
// must be repaired at once (a frame time), not by a long timeout.
#include <gtest/gtest.h>

#include <cstring>
#include <deque>
#include <memory>
#include <vector>

#include "engine/crc32c.h"
#include "link/hop.h"
#include "link/messages.h"

using namespace llmwire;

namespace {

class FakeClock final : public Clock {
 public:
  uint64_t now_us() override { return us; }
  uint64_t us = 1000000;
};

// Faults for the next writes on a wire, by write number (1-based), plus random ones.
struct WirePlan {
  std::vector<uint32_t> drop, corrupt, dup;
  double p_drop = 0, p_corrupt = 0, p_dup = 0;
};

// One direction of a hop: what a board writes, after faults, waiting to be read.
class Wire final : public ByteLink {
 public:
  Wire(WirePlan plan, uint64_t seed) : plan_(std::move(plan)), rng_(seed) {}
  bool write(const uint8_t* data, size_t len) override {
    writes++;
    bytes_written += len;
    if (!enabled) {
      bytes.insert(bytes.end(), data, data + len);
      return true;
    }
    const auto has = [&](const std::vector<uint32_t>& v) {
      for (uint32_t w : v)
        if (w == writes) return true;
      return false;
    };
    if (has(plan_.drop) || uniform() < plan_.p_drop) {
      dropped++;
      return true;
    }
    std::vector<uint8_t> b(data, data + len);
    if (has(plan_.corrupt)) {  // planned: a bit in the middle of the frame
      b[len / 2] ^= 0x10;
      corrupted++;
    } else if (uniform() < plan_.p_corrupt) {
      const size_t bit = (size_t)(uniform() * (double)(len * 8));
      b[bit / 8] ^= (uint8_t)(1u << (bit % 8));
      corrupted++;
    }
    const int copies = (has(plan_.dup) || uniform() < plan_.p_dup) ? 2 : 1;
    for (int c = 0; c < copies; c++) bytes.insert(bytes.end(), b.begin(), b.end());
    return true;
  }
  size_t read(uint8_t*, size_t, uint32_t) override { return 0; }  // boards read via take()
  std::vector<uint8_t> take() {
    std::vector<uint8_t> out(bytes.begin(), bytes.end());
    bytes.clear();
    return out;
  }
  uint32_t writes = 0, dropped = 0, corrupted = 0;
  size_t bytes_written = 0;
  bool enabled = true;  // false: a clean wire
  std::deque<uint8_t> bytes;

 private:
  double uniform() {
    uint64_t z = (rng_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return (double)((z ^ (z >> 31)) >> 11) * (1.0 / 9007199254740992.0);
  }
  WirePlan plan_;
  uint64_t rng_;
};

// A board: its hop, and what the hop delivered. Boards other than 0 and the last pass every
// frame on (like a worker forwarding), so frames from board 0 cross every hop but the last.
struct Board : FrameSink {
  Hop hop;
  FakeClock* clock = nullptr;
  std::vector<uint32_t> at_ms;  // fake time of each delivery
  std::vector<uint8_t> frame_buf = std::vector<uint8_t>(kMaxFrameSize);
  std::vector<uint8_t> resend;
  std::vector<uint32_t> got;   // first payload word of each delivered frame
  std::vector<uint32_t> sums;  // CRC-32C of each delivered payload
  bool relay = false;
  void on_frame(const Frame& f) override {
    uint32_t v = 0;
    if (f.len >= 4) memcpy(&v, f.payload, 4);
    got.push_back(v);
    sums.push_back(crc32c(f.payload, f.len));
    at_ms.push_back((uint32_t)(clock->us / 1000 - 1000));
    if (relay) hop.forward(f);
  }
};

struct TestRing {
  FakeClock clock;
  std::vector<std::unique_ptr<Wire>> wires;  // wire k: board k -> board k+1
  std::vector<std::unique_ptr<Board>> boards;
  size_t repair = 0;  // HopOptions::repair_bytes of every board
  TestRing(size_t n, const std::vector<WirePlan>& plans, uint64_t seed = 1,
           size_t resend_bytes = 4096, size_t repair_bytes = 0)
      : repair(repair_bytes) {
    for (size_t k = 0; k < n; k++) {
      wires.push_back(std::make_unique<Wire>(k < plans.size() ? plans[k] : WirePlan{}, seed + k));
    }
    for (size_t k = 0; k < n; k++) boot(k, 100 + (uint32_t)k, resend_bytes, n);
  }
  void boot(size_t k, uint32_t boot_id, size_t resend_bytes = 4096, size_t n = 0) {
    if (n == 0) n = wires.size();
    if (boards.size() <= k) boards.resize(k + 1);
    boards[k] = std::make_unique<Board>();
    Board& b = *boards[k];
    b.resend.resize(resend_bytes + repair);
    b.clock = &clock;
    b.relay = k != 0 && k + 1 != n;
    HopOptions o;
    o.stage_index = (uint8_t)k;
    o.stage_count = (uint8_t)n;
    o.boot_id = boot_id;
    o.repair_bytes = (uint32_t)repair;
    b.hop.init(wires[k].get(), &clock, &b, b.frame_buf.data(), b.resend.data(), b.resend.size(), o);
  }
  // Moves bytes along every wire until the ring is quiet, then lets 1 ms pass.
  void step() {
    for (int round = 0; round < 64; round++) {
      bool moved = false;
      for (size_t k = 0; k < wires.size(); k++) {
        std::vector<uint8_t> b = wires[k]->take();
        if (b.empty()) continue;
        moved = true;
        boards[(k + 1) % wires.size()]->hop.push(b.data(), b.size());
      }
      if (!moved) break;
    }
    clock.us += 1000;
    for (auto& b : boards) b->hop.tick();
  }
  bool send(uint32_t v, size_t bytes = 64) {
    Hop& h = boards[0]->hop;
    for (size_t i = 0; i < bytes; i++) h.payload()[i] = (uint8_t)(0x5A + i * 7 + v);
    memcpy(h.payload(), &v, 4);
    return h.send((uint8_t)MsgType::kActivation, bytes);
  }
  uint32_t ms() const { return (uint32_t)(clock.us / 1000 - 1000); }
};

std::vector<uint32_t> iota(uint32_t n) {
  std::vector<uint32_t> v(n);
  for (uint32_t i = 0; i < n; i++) v[i] = i;
  return v;
}

// CRC-32C of the payload TestRing::send(v, bytes) sends.
uint32_t payload_sum(uint32_t v, size_t bytes) {
  std::vector<uint8_t> p(bytes);
  for (size_t i = 0; i < bytes; i++) p[i] = (uint8_t)(0x5A + i * 7 + v);
  memcpy(p.data(), &v, 4);
  return crc32c(p.data(), bytes);
}

std::vector<uint32_t> payload_sums(uint32_t n, size_t bytes) {
  std::vector<uint32_t> v(n);
  for (uint32_t i = 0; i < n; i++) v[i] = payload_sum(i, bytes);
  return v;
}

// Pushes a HOP_NAK frame into a board's RX.
void push_nak(Hop* h, const HopNak& n) {
  uint8_t f[kFrameOverhead + kHopNakMaxSize];
  const size_t plen = encode_hop_nak(n, f + kFrameHeaderSize, kHopNakMaxSize);
  ASSERT_GT(plen, 0u);
  const size_t len = finish_frame(f, sizeof f, (uint8_t)MsgType::kHopNak, 0, plen);
  h->push(f, len);
}

}  // namespace

TEST(Hop, MessagesLayout) {
  uint8_t b[8];
  HopNak n;
  n.from_seq = 0x1234;
  n.stage = 2;
  n.ttl = 3;
  ASSERT_EQ(encode_hop_nak(n, b, sizeof b), 4u);
  EXPECT_EQ(0, memcmp(b, "\x34\x12\x02\x03", 4));
  HopNak back;
  EXPECT_EQ(decode_hop_nak(b, 4, &back), MsgStatus::kOk);
  EXPECT_EQ(back.from_seq, 0x1234);
  EXPECT_EQ(back.stage, 2);
  EXPECT_EQ(back.ttl, 3);
  b[3] = 0;
  EXPECT_EQ(decode_hop_nak(b, 4, &back), MsgStatus::kBadValue);
  EXPECT_EQ(decode_hop_nak(b, 5, &back), MsgStatus::kBadLength);
  EXPECT_EQ(decode_hop_nak(b, 3, &back), MsgStatus::kTooShort);
  HopMark m;
  m.next_seq = 0xABCD;
  m.kept = 5;
  m.flags = kHopMarkAnswer;
  ASSERT_EQ(encode_hop_mark(m, b, sizeof b), 4u);
  EXPECT_EQ(0, memcmp(b, "\xCD\xAB\x05\x01", 4));
  EXPECT_EQ(validate_message((uint8_t)MsgType::kHopMark, b, 4), MsgStatus::kOk);
  b[3] = 2;
  EXPECT_EQ(validate_message((uint8_t)MsgType::kHopMark, b, 4), MsgStatus::kBadValue);
  b[3] = 1;
  EXPECT_EQ(validate_message((uint8_t)MsgType::kHopMark, b, 3), MsgStatus::kTooShort);
  EXPECT_STREQ(msg_type_name(8), "HOP_NAK");
  EXPECT_STREQ(msg_type_name(9), "HOP_MARK");
  EXPECT_STREQ(msg_type_name(10), "HOP_PATCH");
}

TEST(Hop, NakDigestAndPatchLayout) {
  uint8_t b[kHopNakMaxSize];
  HopNak n;
  n.from_seq = 0x1234;
  n.stage = 1;
  n.ttl = 5;
  n.frame_len = 70;  // three 32-byte blocks
  n.block_shift = 5;
  n.checks[0] = 0xA1;
  n.checks[1] = 0xB2;
  n.checks[2] = 0xC3;
  ASSERT_EQ(encode_hop_nak(n, b, sizeof b), 10u);
  EXPECT_EQ(0, memcmp(b, "\x34\x12\x01\x05\x46\x00\x05\xA1\xB2\xC3", 10));
  HopNak back;
  ASSERT_EQ(decode_hop_nak(b, 10, &back), MsgStatus::kOk);
  EXPECT_EQ(back.frame_len, 70);
  EXPECT_EQ(back.block_shift, 5);
  EXPECT_EQ(back.checks[2], 0xC3);
  EXPECT_EQ(decode_hop_nak(b, 9, &back), MsgStatus::kBadLength);  // a check missing
  EXPECT_EQ(decode_hop_nak(b, 6, &back), MsgStatus::kBadLength);  // half a digest
  b[6] = 3;                                                       // 8-byte blocks: too small
  EXPECT_EQ(decode_hop_nak(b, 10, &back), MsgStatus::kBadValue);
  b[6] = 4;
  b[4] = 0xFF;  // 16-byte blocks of 255 bytes: 16 checks, not 3
  EXPECT_EQ(decode_hop_nak(b, 10, &back), MsgStatus::kBadLength);
  b[4] = 2;  // shorter than any frame
  EXPECT_EQ(decode_hop_nak(b, 7, &back), MsgStatus::kBadValue);
  n.frame_len = 33 * 16;  // 33 blocks of 16 bytes: more than kHopMaxBlocks
  n.block_shift = 4;
  EXPECT_EQ(encode_hop_nak(n, b, sizeof b), 0u);
  EXPECT_EQ(hop_block_check((const uint8_t*)"123456789", 9), 0x83);  // CRC-32C E3069283
  // docs/PROTOCOL.md "Worked example: a block repair": the dim 4 ACTIVATION with bit 6 of
  // byte 34 flipped has checks F5 4D; as sent, block 1's is A6.
  const uint8_t act[40] = {0xA5, 0x5A, 1, 2,    7, 0, 0x1C, 0,    1,    0,    0,    0,   5, 0,
                           0,    0,    2, 0,    1, 0, 0,    0,    0x80, 0x3F, 0,    0,   0, 0xC0,
                           0,    0,    0, 0x3F, 0, 0, 0x50, 0x40, 0x16, 0xA4, 0x8D, 0x1C};
  ASSERT_TRUE(parse_frame(act, sizeof act, nullptr));
  uint8_t dmg[40];
  memcpy(dmg, act, sizeof dmg);
  dmg[34] ^= 0x40;
  EXPECT_EQ(hop_block_check(dmg, 32), 0xF5);
  EXPECT_EQ(hop_block_check(dmg + 32, 8), 0x4D);
  EXPECT_EQ(hop_block_check(act + 32, 8), 0xA6);

  uint8_t p[16];
  ASSERT_EQ(encode_hop_patch(0x0102, 0x0040, (const uint8_t*)"xyz", 3, p, sizeof p), 7u);
  EXPECT_EQ(0, memcmp(p, "\x02\x01\x40\x00xyz", 7));
  HopPatchView v;
  ASSERT_EQ(decode_hop_patch(p, 7, &v), MsgStatus::kOk);
  EXPECT_EQ(v.seq, 0x0102);
  EXPECT_EQ(v.offset, 0x40);
  EXPECT_EQ(v.n, 3);
  EXPECT_EQ(0, memcmp(v.bytes, "xyz", 3));
  EXPECT_EQ(decode_hop_patch(p, 4, &v), MsgStatus::kTooShort);  // no bytes
  p[2] = 0x0A;
  p[3] = 0x20;  // offset 8202 + 3 bytes > kMaxFrameSize
  EXPECT_EQ(validate_message((uint8_t)MsgType::kHopPatch, p, 7), MsgStatus::kBadValue);
}

// A bit flipped in a 280-byte frame on hop 0 of a 3-board ring: board 1 keeps the damaged
// copy, its NAK carries the digest round through board 2, and board 0 answers with the one
// damaged 32-byte block. Board 1 mends the frame (whole-frame CRC good) and passes it on.
TEST(Hop, DamagedFrameIsMendedFromOnlyItsDamagedBlock) {
  const size_t bytes = 280 - kFrameOverhead;
  WirePlan p;
  p.corrupt = {2 * 5 + 1};  // frame 5: a bit in its middle
  TestRing r(3, {p}, 1, 4096, frame_size(bytes));
  for (uint32_t i = 0; i < 10; i++) {
    ASSERT_TRUE(r.send(i, bytes));
    r.step();
  }
  for (int i = 0; i < 5; i++) r.step();
  EXPECT_EQ(r.boards[2]->got, iota(10));
  EXPECT_EQ(r.boards[2]->sums, payload_sums(10, bytes));
  EXPECT_EQ(r.boards[1]->hop.counters().mended, 1u);
  EXPECT_EQ(r.boards[0]->hop.counters().patches_sent, 2u);  // one per copy of the NAK
  EXPECT_EQ(r.boards[0]->hop.counters().frames_resent, 2u);
  // Wire 0 carried ten frames, their marks, and for each copy of the NAK a patch (one
  // block) and an answer mark: never the frame again.
  EXPECT_EQ(r.wires[0]->bytes_written,
            10 * (frame_size(bytes) + frame_size(kHopMarkSize)) +
                2 * (frame_size(kHopPatchHeaderSize + 32) + frame_size(kHopMarkSize)));
  EXPECT_EQ(r.boards[2]->at_ms[5], 5u);  // repaired while the frame was due
}

// The checks only say where to look: a sender whose frame agrees with every check sends the
// whole frame, and a NAK whose copy has another length gets the whole frame too.
TEST(Hop, DigestThatShowsNoDifferenceGetsTheWholeFrame) {
  const size_t bytes = 200;
  TestRing r(2, {}, 1, 4096, frame_size(bytes));
  ASSERT_TRUE(r.send(7, bytes));
  std::vector<uint8_t> sent = r.wires[0]->take();
  ASSERT_EQ(sent.size(), frame_size(bytes) + frame_size(kHopMarkSize));
  HopNak n;
  n.from_seq = (uint16_t)(r.boards[0]->hop.next_seq() - 1);
  n.stage = 0;
  n.ttl = 1;
  n.frame_len = (uint16_t)frame_size(bytes);
  n.block_shift = 5;
  for (size_t b = 0, lo = 0; lo < n.frame_len; b++, lo += 32) {
    n.checks[b] = hop_block_check(sent.data() + lo, n.frame_len - lo < 32 ? n.frame_len - lo : 32);
  }
  push_nak(&r.boards[0]->hop, n);
  EXPECT_EQ(r.wires[0]->take().size(), frame_size(bytes) + frame_size(kHopMarkSize));
  n.checks[3] ^= 1;  // one block differs: just that block
  push_nak(&r.boards[0]->hop, n);
  EXPECT_EQ(r.wires[0]->take().size(),
            frame_size(kHopPatchHeaderSize + 32) + frame_size(kHopMarkSize));
  n.frame_len = (uint16_t)(n.frame_len + 1);  // another length: the whole frame
  n.checks[7] = 0;
  push_nak(&r.boards[0]->hop, n);
  EXPECT_EQ(r.wires[0]->take().size(), frame_size(bytes) + frame_size(kHopMarkSize));
  EXPECT_EQ(r.boards[0]->hop.counters().patches_sent, 1u);
}

// A patch is taken only if the mended frame's CRC-32C holds: a patch that does not mend
// (here: bytes that were never damaged) leaves the frame undelivered until a real repair.
TEST(Hop, PatchThatDoesNotMendIsNotTaken) {
  const size_t bytes = 200;
  WirePlan p;
  p.corrupt = {3};  // the second frame (the first syncs the receiver)
  TestRing r(2, {p}, 1, 4096, frame_size(bytes));
  ASSERT_TRUE(r.send(0, bytes));
  r.step();
  ASSERT_TRUE(r.send(1, bytes));
  // Deliver the damaged frame and its mark, but not what board 1 sends back yet.
  std::vector<uint8_t> b = r.wires[0]->take();
  r.boards[1]->hop.push(b.data(), b.size());
  EXPECT_EQ(r.boards[1]->got.size(), 1u);
  std::vector<uint8_t> nak = r.wires[1]->take();
  ASSERT_GT(nak.size(), frame_size(kHopNakSize));  // a NAK with a digest
  uint8_t f[kFrameOverhead + 64];
  uint8_t junk[32];
  memset(junk, 0x5A, sizeof junk);
  const uint16_t seq = (uint16_t)(r.boards[0]->hop.next_seq() - 1);
  size_t plen = encode_hop_patch(seq, 0, junk, 8, f + kFrameHeaderSize, 64);  // wrong header
  size_t len = finish_frame(f, sizeof f, (uint8_t)MsgType::kHopPatch, 0, plen);
  r.boards[1]->hop.push(f, len);
  EXPECT_EQ(r.boards[1]->got.size(), 1u);
  EXPECT_EQ(r.boards[1]->hop.counters().mended, 0u);
  // Now the real answer, from the wire as it is: the frame arrives whole and right.
  r.boards[0]->hop.push(nak.data(), nak.size());
  for (int i = 0; i < 100 && r.boards[1]->got.size() < 2; i++) r.step();
  EXPECT_EQ(r.boards[1]->got, iota(2));
  EXPECT_EQ(r.boards[1]->sums, payload_sums(2, bytes));
}

// Writes on wire 0 are numbered: frame i is write 2i+1 and its mark write 2i+2 until the
// first repair adds four writes (the first NAK goes twice: each copy gets the frame and an
// answer mark).
TEST(Hop, CorruptedOrLostFrameIsResentAtOnce) {
  WirePlan p;
  p.corrupt = {2 * 5 + 1};  // frame 5 arrives damaged
  p.drop = {2 * 12 + 5};    // frame 12 vanishes; its mark reveals the gap
  p.dup = {2 * 20 + 9};     // frame 20 arrives twice
  TestRing r(2, {p});
  for (uint32_t i = 0; i < 30; i++) {
    ASSERT_TRUE(r.send(i));
    r.step();
  }
  for (int i = 0; i < 5; i++) r.step();
  EXPECT_EQ(r.boards[1]->got, iota(30));
  EXPECT_EQ(r.boards[0]->hop.counters().frames_resent, 4u);  // two repairs, two NAKs each
  EXPECT_EQ(r.boards[1]->hop.counters().duplicates, 3u);     // frame 20, the second answers
  EXPECT_GE(r.boards[1]->hop.counters().naks_sent, 2u);
  EXPECT_EQ(r.wires[0]->corrupted, 1u);
  EXPECT_EQ(r.wires[0]->dropped, 1u);
  // Each repair happened while the frame was due: no timer, no waiting.
  for (uint32_t i = 0; i < 30; i++) EXPECT_EQ(r.boards[1]->at_ms[i], i) << "frame " << i;
}

TEST(Hop, LostFrameAndItsMarkAreFoundByTheRepeatedMark) {
  WirePlan p;
  p.drop = {2 * 3 + 1, 2 * 3 + 2};  // frame 3 and its mark
  TestRing r(2, {p});
  for (uint32_t i = 0; i < 4; i++) {
    ASSERT_TRUE(r.send(i));
    r.step();
  }
  EXPECT_EQ(r.boards[1]->got, iota(3));
  for (int i = 0; i < 25; i++) r.step();  // remark_ms = 20
  EXPECT_EQ(r.boards[1]->got, iota(4));
  EXPECT_EQ(r.boards[0]->hop.counters().frames_resent, 2u);  // once per copy of the NAK
  EXPECT_LE(r.boards[1]->at_ms[3], 3u + 21u);
}

TEST(Hop, BurstWithAGapIsDeliveredInOrder) {
  WirePlan p;
  p.corrupt = {2 * 1 + 1};  // the second of four back-to-back frames
  TestRing r(3, {p});
  for (uint32_t i = 0; i < 4; i++) ASSERT_TRUE(r.send(i));  // no step: a burst
  for (int i = 0; i < 5; i++) r.step();
  EXPECT_EQ(r.boards[1]->got, iota(4));
  EXPECT_EQ(r.boards[2]->got, iota(4));
  // The NAK from board 1 went round through board 2 to board 0.
  EXPECT_GE(r.boards[2]->hop.counters().naks_forwarded, 1u);
  // Go-back-N from the gap for the NAK, then the one frame again for its copy.
  EXPECT_EQ(r.boards[0]->hop.counters().frames_resent, 4u);
  EXPECT_EQ(r.boards[1]->at_ms[3], 0u);
}

TEST(Hop, HeavyRandomFaultsOnEveryHopStillDeliverEverythingOnce) {
  // With and without block repair: mended frames must be exactly the frames sent.
  for (size_t repair : {(size_t)0, frame_size(64)})
    for (size_t n : {2u, 3u, 6u}) {
      WirePlan p;  // per write (frame, mark or NAK); a NAK from board 1 crosses n - 1 wires
      p.p_drop = n == 6 ? 0.05 : 0.15;
      p.p_corrupt = n == 6 ? 0.1 : 0.3;
      p.p_dup = 0.2;
      TestRing r(n, std::vector<WirePlan>(n, p), 7 * n, 4096, repair);
      // Frame 0 crosses a clean ring (as a HELLO that made it would): every receiver is synced.
      for (auto& w : r.wires) w->enabled = false;
      ASSERT_TRUE(r.send(0));
      r.step();
      for (auto& w : r.wires) w->enabled = true;
      // Then bursts of up to three frames in flight, as the head's window allows.
      const uint32_t count = 300;
      auto& got = r.boards[n - 1]->got;
      uint32_t sent = 1;
      for (int t = 0; t < 200000 && got.size() < count; t++) {
        while (sent < count && sent < got.size() + 3) ASSERT_TRUE(r.send(sent++));
        r.step();
      }
      EXPECT_EQ(got, iota(count)) << n << " boards";
      EXPECT_EQ(r.boards[n - 1]->sums, payload_sums(count, 64)) << n << " boards";
      for (size_t k = 0; k < n && got != iota(count); k++) {
        const HopCounters& c = r.boards[k]->hop.counters();
        std::printf("board %zu: got %zu lost %u naks %u fwd %u recv %u resent %u ooo %u dups %u\n",
                    k, r.boards[k]->got.size(), c.lost, c.naks_sent, c.naks_forwarded,
                    c.naks_received, c.frames_resent, c.out_of_order, c.duplicates);
      }
      uint32_t resent = 0, lost = 0, mended = 0;
      for (auto& b : r.boards) {
        resent += b->hop.counters().frames_resent;
        lost += b->hop.counters().lost;
        mended += b->hop.counters().mended;
      }
      EXPECT_GT(resent, 0u);
      if (repair) {
        EXPECT_GT(mended, 0u) << n << " boards";
      }
      EXPECT_EQ(lost, 0u);
      std::printf("%zu boards, repair %zu: %u frames in %u ms of fake time, %u resent, %u mended\n",
                  n, repair, count, r.ms(), resent, mended);
    }
}

TEST(Hop, RebootedSenderIsFollowed) {
  TestRing r(2, {});
  for (uint32_t i = 0; i < 10; i++) {
    ASSERT_TRUE(r.send(i));
    r.step();
  }
  r.boot(0, 999);  // board 0 restarts: its numbering starts elsewhere
  for (uint32_t i = 100; i < 105; i++) {
    ASSERT_TRUE(r.send(i));
    r.step();
  }
  std::vector<uint32_t> want = iota(10);
  for (uint32_t i = 100; i < 105; i++) want.push_back(i);
  EXPECT_EQ(r.boards[1]->got, want);
}

TEST(Hop, FramesGoneFromTheResendBufferAreGivenUp) {
  // A buffer of two small frames and a burst of six; frames 1 and 2 are lost with their
  // marks. When the NAK for frame 1 arrives, the sender keeps only 4 and 5: the receiver
  // gives up 1..3 (3 arrived, but behind the gap) and takes 4 and 5 again.
  WirePlan p;
  p.drop = {3, 4, 5, 6};
  TestRing r(2, {p}, 1, 2 * frame_size(64));
  for (uint32_t i = 0; i < 6; i++) ASSERT_TRUE(r.send(i));
  for (int i = 0; i < 5; i++) r.step();
  EXPECT_EQ(r.boards[1]->got, (std::vector<uint32_t>{0, 4, 5}));
  EXPECT_EQ(r.boards[1]->hop.counters().lost, 3u);
}

TEST(Hop, StrayNaksDieOut) {
  // A NAK naming a board that is not in the ring crosses at most `ttl` hops: one arriving
  // at board 1 with ttl 3 has crossed one; boards 1 and 2 pass it on, board 0 drops it.
  TestRing r(3, {});
  uint8_t f[kFrameOverhead + kHopNakSize];
  HopNak n;
  n.stage = 9;
  n.ttl = 3;
  encode_hop_nak(n, f + kFrameHeaderSize, kHopNakSize);
  const size_t len = finish_frame(f, sizeof f, (uint8_t)MsgType::kHopNak, 0, kHopNakSize);
  r.boards[1]->hop.push(f, len);
  for (int i = 0; i < 5; i++) r.step();
  EXPECT_EQ(r.boards[1]->hop.counters().naks_forwarded, 1u);
  EXPECT_EQ(r.boards[2]->hop.counters().naks_forwarded, 1u);
  EXPECT_EQ(r.boards[0]->hop.counters().naks_forwarded, 0u);
  EXPECT_TRUE(r.boards[0]->got.empty());
}

// A NAK lost on the way is sent again after the hop's measured round trip (about a frame
// time here), not after the 40 ms a hop waits before it has measured one.
TEST(Hop, LostNakIsRetriedAfterTheMeasuredRoundTrip) {
  WirePlan w0, w1;
  w0.corrupt = {2 * 2 + 1, 2 * 6 + 5};  // frames 2 and 6 (the first repair adds four writes)
  // Board 1 passes frames on: frame i and its mark are its writes 2i+1, 2i+2, its two NAKs
  // for frame 2 then writes 5 and 6; frame 6's two NAKs are writes 15 and 16: both lost.
  w1.drop = {15, 16};
  TestRing r(3, {w0, w1});
  for (uint32_t i = 0; i < 10; i++) {
    ASSERT_TRUE(r.send(i));
    r.step();
  }
  for (int i = 0; i < 60; i++) r.step();
  EXPECT_EQ(r.boards[2]->got, iota(10));
  EXPECT_EQ(r.wires[1]->dropped, 2u);
  EXPECT_EQ(r.boards[2]->at_ms[2], 2u);        // the first repair: at once
  EXPECT_GT(r.boards[2]->at_ms[6], 6u);        // the second waited for a retry ...
  EXPECT_LE(r.boards[2]->at_ms[6], 6u + 10u);  // ... of a few ms, not 40
}
