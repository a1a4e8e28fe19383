// The hop layer on its own: rings of Hop objects joined by in-memory wires that corrupt,
// drop and duplicate whole writes (a frame, a mark or a NAK), driven by a fake clock. Every
// frame the first board sends must arrive at the end exactly once and in order, and faults
// must be repaired at once (a frame time), not by a long timeout.
#include <gtest/gtest.h>

#include <cstring>
#include <deque>
#include <memory>
#include <vector>

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
  std::vector<uint32_t> got;  // first payload word of each delivered frame
  bool relay = false;
  void on_frame(const Frame& f) override {
    uint32_t v = 0;
    if (f.len >= 4) memcpy(&v, f.payload, 4);
    got.push_back(v);
    at_ms.push_back((uint32_t)(clock->us / 1000 - 1000));
    if (relay) hop.forward(f);
  }
};

struct TestRing {
  FakeClock clock;
  std::vector<std::unique_ptr<Wire>> wires;  // wire k: board k -> board k+1
  std::vector<std::unique_ptr<Board>> boards;
  TestRing(size_t n, const std::vector<WirePlan>& plans, uint64_t seed = 1,
           size_t resend_bytes = 4096) {
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
    b.resend.resize(resend_bytes);
    b.clock = &clock;
    b.relay = k != 0 && k + 1 != n;
    HopOptions o;
    o.stage_index = (uint8_t)k;
    o.stage_count = (uint8_t)n;
    o.boot_id = boot_id;
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
    memset(h.payload(), 0x5A, bytes);
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
}

// Writes on wire 0 are numbered: frame i is write 2i+1 and its mark write 2i+2 until the
// first resend (a frame and its answer mark) adds two writes.
TEST(Hop, CorruptedOrLostFrameIsResentAtOnce) {
  WirePlan p;
  p.corrupt = {2 * 5 + 1};  // frame 5 arrives damaged
  p.drop = {2 * 12 + 3};    // frame 12 vanishes; its mark reveals the gap
  p.dup = {2 * 20 + 5};     // frame 20 arrives twice
  TestRing r(2, {p});
  for (uint32_t i = 0; i < 30; i++) {
    ASSERT_TRUE(r.send(i));
    r.step();
  }
  for (int i = 0; i < 5; i++) r.step();
  EXPECT_EQ(r.boards[1]->got, iota(30));
  EXPECT_EQ(r.boards[0]->hop.counters().frames_resent, 2u);
  EXPECT_EQ(r.boards[1]->hop.counters().duplicates, 1u);
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
  EXPECT_EQ(r.boards[0]->hop.counters().frames_resent, 1u);
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
  EXPECT_EQ(r.boards[0]->hop.counters().frames_resent, 3u);  // go-back-N from the gap, once
  EXPECT_EQ(r.boards[1]->at_ms[3], 0u);
}

TEST(Hop, HeavyRandomFaultsOnEveryHopStillDeliverEverythingOnce) {
  for (size_t n : {2u, 3u, 6u}) {
    WirePlan p;  // per write (frame, mark or NAK); a NAK from board 1 crosses n - 1 wires
    p.p_drop = n == 6 ? 0.05 : 0.15;
    p.p_corrupt = n == 6 ? 0.1 : 0.3;
    p.p_dup = 0.2;
    TestRing r(n, std::vector<WirePlan>(n, p), 7 * n);
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
    for (size_t k = 0; k < n && got != iota(count); k++) {
      const HopCounters& c = r.boards[k]->hop.counters();
      std::printf("board %zu: got %zu lost %u naks %u fwd %u recv %u resent %u ooo %u dups %u\n", k,
                  r.boards[k]->got.size(), c.lost, c.naks_sent, c.naks_forwarded, c.naks_received,
                  c.frames_resent, c.out_of_order, c.duplicates);
    }
    uint32_t resent = 0, lost = 0;
    for (auto& b : r.boards) {
      resent += b->hop.counters().frames_resent;
      lost += b->hop.counters().lost;
    }
    EXPECT_GT(resent, 0u);
    EXPECT_EQ(lost, 0u);
    std::printf("%zu boards: %u frames in %u ms of fake time, %u resent\n", n, count, r.ms(),
                resent);
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
