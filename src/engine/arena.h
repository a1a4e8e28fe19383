// Caller-owned memory, TFLM style: a board hands the engine a fast region (internal SRAM:
// activations, scratch) and a big region (PSRAM: KV cache, logits, attention scores). An
// Arena carves one region front to back at init and never frees; with no base it only counts,
// so the same code that lays buffers out also tells the planner how much each region needs.
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace llmwire {

struct MemoryRegion {
  uint8_t* base = nullptr;
  size_t size = 0;
};

// Bytes a configuration needs in each region.
struct MemoryNeeds {
  size_t fast = 0;
  size_t big = 0;
};

class Arena {
 public:
  static constexpr size_t kAlign = 16;

  Arena() = default;  // counting only
  explicit Arena(MemoryRegion r) : base_(r.base), size_(r.size) {
    // Align the start so a region's needs do not depend on where it lies.
    const size_t pad = (kAlign - ((uintptr_t)base_ & (kAlign - 1))) & (kAlign - 1);
    if (base_ && pad <= size_) {
      base_ += pad;
      size_ -= pad;
    } else if (base_) {
      size_ = 0;
    }
  }

  // `count` elements of T, 16-byte aligned; nullptr when counting or out of room (then
  // overflowed() says so and used() keeps counting what would have been needed).
  template <typename T>
  T* take(size_t count) {
    used_ = (used_ + kAlign - 1) & ~(kAlign - 1);
    const size_t bytes = count * sizeof(T);
    T* p = nullptr;
    if (base_ && used_ + bytes <= size_) {
      p = reinterpret_cast<T*>(base_ + used_);
    } else if (base_) {
      overflow_ = true;
    }
    used_ += bytes;
    return p;
  }

  // Bytes taken so far, rounded up to the alignment (what a caller must provide).
  size_t used() const { return (used_ + kAlign - 1) & ~(kAlign - 1); }
  bool counting() const { return base_ == nullptr; }
  bool overflowed() const { return overflow_; }

 private:
  uint8_t* base_ = nullptr;
  size_t size_ = 0;
  size_t used_ = 0;
  bool overflow_ = false;
};

// Region sizes to allocate on a host for needs `n`: one alignment unit of slack each, since a
// host allocator does not promise 16-byte alignment.
inline size_t region_bytes_for(size_t need) {
  return need + Arena::kAlign;
}

}  // namespace llmwire
