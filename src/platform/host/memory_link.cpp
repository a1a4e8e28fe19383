#include "platform/host/memory_link.h"

#include <string.h>

namespace llmwire {

// head_ and tail_ run over [0, 2 * cap) so that full (distance cap) and empty (distance 0)
// differ, and nothing depends on size_t wrapping (4 GB of traffic is a day at 460800 baud
// on a 32-bit MCU).
static inline size_t distance(size_t h, size_t t, size_t cap) {
  return h >= t ? h - t : h + 2 * cap - t;
}
static inline size_t advance_index(size_t v, size_t n, size_t cap) {
  v += n;
  return v >= 2 * cap ? v - 2 * cap : v;
}

size_t ByteQueue::size() const {
  const size_t t = tail_.load(std::memory_order_acquire);
  const size_t h = head_.load(std::memory_order_acquire);
  return distance(h, t, cap_);
}

size_t ByteQueue::space() const {
  return cap_ - size();
}

bool ByteQueue::push(const uint8_t* data, size_t len) {
  if (len == 0) return true;
  if (!data || !buf_ || closed()) return false;
  const size_t h = head_.load(std::memory_order_relaxed);  // only the producer writes head_
  const size_t t = tail_.load(std::memory_order_acquire);
  if (len > cap_ - distance(h, t, cap_)) return false;
  const size_t at = h < cap_ ? h : h - cap_;
  const size_t first = (len < cap_ - at) ? len : cap_ - at;
  memcpy(buf_ + at, data, first);
  if (len > first) memcpy(buf_, data + first, len - first);
  head_.store(advance_index(h, len, cap_), std::memory_order_release);
  return true;
}

size_t ByteQueue::pop(uint8_t* out, size_t max) {
  if (!out || !buf_ || max == 0) return 0;
  const size_t t = tail_.load(std::memory_order_relaxed);  // only the consumer writes tail_
  const size_t h = head_.load(std::memory_order_acquire);
  size_t n = distance(h, t, cap_);
  if (n > max) n = max;
  if (n == 0) return 0;
  const size_t at = t < cap_ ? t : t - cap_;
  const size_t first = (n < cap_ - at) ? n : cap_ - at;
  memcpy(out, buf_ + at, first);
  if (n > first) memcpy(out + first, buf_, n - first);
  tail_.store(advance_index(t, n, cap_), std::memory_order_release);
  return n;
}

bool MemoryLink::write(const uint8_t* data, size_t len) {
  return tx_->push(data, len);
}

size_t MemoryLink::read(uint8_t* buf, size_t max, uint32_t /*timeout_ms*/) {
  return rx_->pop(buf, max);
}

bool MemoryLink::ok() const {
  return !closed_.load(std::memory_order_acquire) && !(rx_->closed() && rx_->size() == 0);
}

void MemoryLink::close() {
  closed_.store(true, std::memory_order_release);
  tx_->close();
  rx_->close();
}

}  // namespace llmwire
