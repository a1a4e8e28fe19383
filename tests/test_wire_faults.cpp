// The simulator's fault injection does what its settings say, so fault tests mean something.
#include <gtest/gtest.h>

#include "tools/wire_faults.h"

using namespace llmwire;

TEST(WireFaults, CleanWirePassesFramesUnchanged) {
  WireFaults w(WireFaultConfig{});
  std::vector<uint8_t> frame(500);
  for (size_t i = 0; i < frame.size(); i++) frame[i] = (uint8_t)(i * 7);
  std::vector<WireChunk> out;
  for (int i = 0; i < 100; i++) {
    w.transmit(frame.data(), frame.size(), &out);
    ASSERT_EQ(out.size(), 1u);
    ASSERT_EQ(out[0].bytes, frame);
  }
  EXPECT_EQ(w.counters().bits_flipped, 0u);
}

TEST(WireFaults, BitErrorRateMatchesSetting) {
  WireFaultConfig c;
  c.ber = 1e-3;
  c.seed = 9;
  WireFaults w(c);
  std::vector<uint8_t> frame(1000, 0);
  std::vector<WireChunk> out;
  uint64_t ones = 0;
  const int frames = 2000;  // 16 M bits: expect ~16000 flips
  for (int i = 0; i < frames; i++) {
    w.transmit(frame.data(), frame.size(), &out);
    for (uint8_t b : out[0].bytes) ones += __builtin_popcount(b);
  }
  EXPECT_EQ(ones, w.counters().bits_flipped);
  EXPECT_NEAR((double)ones / (8.0 * 1000 * frames), 1e-3, 1e-4);
}

TEST(WireFaults, DropDupAndStallRates) {
  WireFaultConfig c;
  c.drop = 0.05;
  c.dup = 0.05;
  c.stall_ms = 30;
  c.stall_prob = 0.1;
  c.seed = 3;
  WireFaults w(c);
  std::vector<uint8_t> frame(64, 0xAB);
  std::vector<WireChunk> out;
  uint64_t delivered = 0;
  for (int i = 0; i < 20000; i++) {
    w.transmit(frame.data(), frame.size(), &out);
    size_t bytes = 0;
    for (auto& ch : out) bytes += ch.bytes.size();
    delivered += bytes / frame.size();
  }
  const auto& k = w.counters();
  EXPECT_NEAR(k.dropped / 20000.0, 0.05, 0.01);
  EXPECT_NEAR(k.duplicated / 19000.0, 0.05, 0.01);
  EXPECT_NEAR(k.stalls / 20000.0, 0.1, 0.02);
  EXPECT_EQ(delivered, 20000 - k.dropped + k.duplicated);
}
