#include "tools/wire_faults.h"

#include <cmath>

namespace llmwire {

double WireFaults::uniform() {
  // splitmix64
  uint64_t z = (rng_ += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

void WireFaults::corrupt(std::vector<uint8_t>* bytes) {
  if (cfg_.ber <= 0) return;
  const double bits = 8.0 * bytes->size();
  double at = 0;
  bool hit = false;
  for (;;) {
    if (next_error_bit_ < 0) {
      // Gap to the next flipped bit: geometric with parameter ber.
      const double u = uniform();
      next_error_bit_ = std::floor(std::log(1.0 - u) / std::log(1.0 - cfg_.ber));
    }
    if (at + next_error_bit_ >= bits) {
      next_error_bit_ -= bits - at;
      break;
    }
    at += next_error_bit_;
    const size_t bit = (size_t)at;
    (*bytes)[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    counters_.bits_flipped++;
    hit = true;
    at += 1;
    next_error_bit_ = -1;
  }
  if (hit) counters_.corrupted++;
}

void WireFaults::transmit(const uint8_t* frame, size_t len, std::vector<WireChunk>* out) {
  out->clear();
  counters_.frames++;
  if (cfg_.drop > 0 && uniform() < cfg_.drop) {
    counters_.dropped++;
    return;
  }
  int copies = 1;
  if (cfg_.dup > 0 && uniform() < cfg_.dup) {
    counters_.duplicated++;
    copies = 2;
  }
  for (int c = 0; c < copies; c++) {
    std::vector<uint8_t> bytes(frame, frame + len);
    corrupt(&bytes);
    if (cfg_.stall_ms > 0 && cfg_.stall_prob > 0 && len > 2 && uniform() < cfg_.stall_prob) {
      // Stall part-way through the frame: the receiver sees a gap inside a frame.
      counters_.stalls++;
      const size_t cut = 1 + (size_t)(uniform() * (double)(len - 2));
      WireChunk first;
      first.bytes.assign(bytes.begin(), bytes.begin() + cut);
      first.pause_ms_after = cfg_.stall_ms;
      out->push_back(first);
      WireChunk rest;
      rest.bytes.assign(bytes.begin() + cut, bytes.end());
      out->push_back(rest);
    } else {
      WireChunk chunk;
      chunk.bytes = bytes;
      out->push_back(chunk);
    }
  }
}

}  // namespace llmwire
