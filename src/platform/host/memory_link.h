// In-memory ByteLink for tests and single-process simulations: a bounded byte queue per
// direction. Portable (no heap, no OS calls): the queue is a single-producer /
// single-consumer ring with atomic indices, so one thread may write while another reads.
// It cannot block: read() returns at once (0 when empty, whatever timeout_ms says) and
// write() fails when the queue lacks room for the whole write, like an overflowing FIFO.
// For blocking in-process links on the host use FdLink over a socketpair (fd_link.h).
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <atomic>

#include "link/byte_link.h"

namespace llmwire {

class ByteQueue {
 public:
  // storage must outlive the queue; 0 < cap <= SIZE_MAX / 2.
  ByteQueue(uint8_t* storage, size_t cap) : buf_(storage), cap_(cap) {}
  ByteQueue(const ByteQueue&) = delete;
  ByteQueue& operator=(const ByteQueue&) = delete;

  size_t capacity() const { return cap_; }
  size_t size() const;   // bytes queued
  size_t space() const;  // bytes free
  // Producer side: all `len` bytes or nothing (false if they do not fit).
  bool push(const uint8_t* data, size_t len);
  // Consumer side: up to `max` bytes, returns how many.
  size_t pop(uint8_t* out, size_t max);
  // Producer or consumer may mark the queue closed (the other end sees ok() == false once
  // it has drained the queue).
  void close() { closed_.store(true, std::memory_order_release); }
  bool closed() const { return closed_.load(std::memory_order_acquire); }

 private:
  uint8_t* buf_;
  size_t cap_;
  // Write / read positions in [0, 2 * cap): size = (head - tail) mod 2 * cap.
  std::atomic<size_t> head_{0};
  std::atomic<size_t> tail_{0};
  std::atomic<bool> closed_{false};
};

class MemoryLink final : public ByteLink {
 public:
  MemoryLink(ByteQueue* tx, ByteQueue* rx) : tx_(tx), rx_(rx) {}
  bool write(const uint8_t* data, size_t len) override;
  size_t read(uint8_t* buf, size_t max, uint32_t timeout_ms) override;
  bool ok() const override;
  // Closes both directions (the peer's ok() turns false once it has read what is queued).
  void close();
  size_t readable() const { return rx_->size(); }

 private:
  ByteQueue* tx_;
  ByteQueue* rx_;
  std::atomic<bool> closed_{false};
};

// Two connected ends with `Cap` bytes of buffering per direction. Not copyable or movable
// (the links point into it); 2 * Cap bytes plus a little, so mind stack sizes on a board.
template <size_t Cap>
struct MemoryLinkPair {
  uint8_t a_to_b_storage[Cap];
  uint8_t b_to_a_storage[Cap];
  ByteQueue a_to_b{a_to_b_storage, Cap};
  ByteQueue b_to_a{b_to_a_storage, Cap};
  MemoryLink a{&a_to_b, &b_to_a};
  MemoryLink b{&b_to_a, &a_to_b};
};

}  // namespace llmwire
