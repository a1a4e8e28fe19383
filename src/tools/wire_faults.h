// What the simulator's wires do to frames: bit errors at a given bit error rate, whole frames
// lost or delivered twice, and mid-frame stalls. Deterministic from a seed.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <vector>

namespace llmwire {

struct WireFaultConfig {
  double ber = 0;         // probability that each bit on the wire flips
  double drop = 0;        // probability that a frame is lost
  double dup = 0;         // probability that a frame arrives twice
  uint32_t stall_ms = 0;  // a stall pauses the wire this long in the middle of a frame
  double stall_prob = 0;  // probability of a stall per frame (when stall_ms > 0)
  uint64_t seed = 1;
};

struct WireFaultCounters {
  uint64_t frames = 0, dropped = 0, duplicated = 0, corrupted = 0, bits_flipped = 0, stalls = 0;
};

// One piece of wire output: bytes, then an optional pause before the next piece.
struct WireChunk {
  std::vector<uint8_t> bytes;
  uint32_t pause_ms_after = 0;
};

class WireFaults {
 public:
  explicit WireFaults(const WireFaultConfig& c) : cfg_(c), rng_(c.seed ? c.seed : 1) {}
  // Turns one frame into what the receiving end sees.
  void transmit(const uint8_t* frame, size_t len, std::vector<WireChunk>* out);
  const WireFaultCounters& counters() const { return counters_; }

 private:
  double uniform();
  // Bit errors over `bytes` at the configured rate (geometric skipping, so cost ~ errors).
  void corrupt(std::vector<uint8_t>* bytes);

  WireFaultConfig cfg_;
  uint64_t rng_;
  double next_error_bit_ = -1;  // bits until the next error
  WireFaultCounters counters_;
};

}  // namespace llmwire
