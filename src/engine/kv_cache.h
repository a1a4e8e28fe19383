// Keys and values of past positions for the layers this board runs. One type, several
// element formats (fp32, fp16; int8 later), chosen at run time.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "engine/fp16.h"
#include "engine/image_format.h"

namespace llmwire {

class KvCache {
 public:
  static size_t element_bytes(KvType t) { return t == KvType::kF16 ? 2 : 4; }
  static size_t bytes(KvType t, uint32_t layers, uint32_t seq, uint32_t kv_dim) {
    return 2 * (size_t)layers * seq * kv_dim * element_bytes(t);
  }

  void init(KvType t, uint32_t layers, uint32_t seq, uint32_t kv_dim, void* mem) {
    type_ = t;
    layers_ = layers;
    seq_ = seq;
    kv_dim_ = kv_dim;
    mem_ = static_cast<uint8_t*>(mem);
  }

  // Stores the key and value vectors of `pos` for local layer index `l`.
  void store(uint32_t l, uint32_t pos, const float* k, const float* v) {
    if (type_ == KvType::kF16) {
      uint16_t* kd = reinterpret_cast<uint16_t*>(slot(0, l, pos));
      uint16_t* vd = reinterpret_cast<uint16_t*>(slot(1, l, pos));
      for (uint32_t i = 0; i < kv_dim_; i++) {
        kd[i] = float_to_half(k[i]);
        vd[i] = float_to_half(v[i]);
      }
    } else {
      float* kd = reinterpret_cast<float*>(slot(0, l, pos));
      float* vd = reinterpret_cast<float*>(slot(1, l, pos));
      for (uint32_t i = 0; i < kv_dim_; i++) {
        kd[i] = k[i];
        vd[i] = v[i];
      }
    }
  }

  // Raw key / value vector of (l, pos): float[kv_dim] or uint16_t[kv_dim] (fp16).
  const void* key(uint32_t l, uint32_t pos) const { return slot(0, l, pos); }
  const void* value(uint32_t l, uint32_t pos) const { return slot(1, l, pos); }

  KvType type() const { return type_; }
  uint32_t seq() const { return seq_; }

 private:
  uint8_t* slot(int which, uint32_t l, uint32_t pos) const {
    const size_t idx = (((size_t)which * layers_ + l) * seq_ + pos) * kv_dim_;
    return mem_ + idx * element_bytes(type_);
  }

  KvType type_ = KvType::kF32;
  uint32_t layers_ = 0, seq_ = 0, kv_dim_ = 0;
  uint8_t* mem_ = nullptr;
};

}  // namespace llmwire
