// Keys and values of past positions for the layers this board runs. One type, several
// element formats (fp32, fp16, int8 with one scale per head vector), chosen at run time.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "engine/fp16.h"
#include "engine/image_format.h"
#include "engine/mathfn.h"

namespace llmwire {

class KvCache {
 public:
  static size_t element_bytes(KvType t) {
    return t == KvType::kF16 ? 2 : (t == KvType::kI8 ? 1 : 4);
  }
  // int8: the int8 elements of every (key|value, layer, position), then a float scale for
  // every head vector of them (kv_heads per position), 4-byte aligned.
  static size_t bytes(KvType t, uint32_t layers, uint32_t seq, uint32_t kv_dim, uint32_t kv_heads) {
    const size_t vectors = 2 * (size_t)layers * seq;
    if (t != KvType::kI8) return vectors * kv_dim * element_bytes(t);
    return scales_offset(vectors, kv_dim) + vectors * kv_heads * sizeof(float);
  }

  void init(KvType t, uint32_t layers, uint32_t seq, uint32_t kv_dim, uint32_t kv_heads,
            void* mem) {
    type_ = t;
    layers_ = layers;
    seq_ = seq;
    kv_dim_ = kv_dim;
    kv_heads_ = kv_heads;
    head_size_ = kv_heads ? kv_dim / kv_heads : 0;
    mem_ = static_cast<uint8_t*>(mem);
    scales_ = reinterpret_cast<float*>(mem_ + scales_offset(2 * (size_t)layers * seq, kv_dim));
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
    } else if (type_ == KvType::kI8) {
      store_i8(k, reinterpret_cast<int8_t*>(slot(0, l, pos)), scales(0, l, pos));
      store_i8(v, reinterpret_cast<int8_t*>(slot(1, l, pos)), scales(1, l, pos));
    } else {
      float* kd = reinterpret_cast<float*>(slot(0, l, pos));
      float* vd = reinterpret_cast<float*>(slot(1, l, pos));
      for (uint32_t i = 0; i < kv_dim_; i++) {
        kd[i] = k[i];
        vd[i] = v[i];
      }
    }
  }

  // Raw key / value vector of (l, pos): float[kv_dim], uint16_t[kv_dim] (fp16) or
  // int8_t[kv_dim] (int8: element i of head h means q[i] * scales[h]).
  const void* key(uint32_t l, uint32_t pos) const { return slot(0, l, pos); }
  const void* value(uint32_t l, uint32_t pos) const { return slot(1, l, pos); }
  // int8 only: the kv_heads scales of key / value (l, pos).
  const float* key_scales(uint32_t l, uint32_t pos) const { return scales(0, l, pos); }
  const float* value_scales(uint32_t l, uint32_t pos) const { return scales(1, l, pos); }

  KvType type() const { return type_; }
  uint32_t seq() const { return seq_; }

 private:
  static size_t scales_offset(size_t vectors, uint32_t kv_dim) {
    return (vectors * kv_dim + 3) & ~(size_t)3;
  }
  size_t vector_index(int which, uint32_t l, uint32_t pos) const {
    return ((size_t)which * layers_ + l) * seq_ + pos;
  }
  uint8_t* slot(int which, uint32_t l, uint32_t pos) const {
    return mem_ + vector_index(which, l, pos) * kv_dim_ * element_bytes(type_);
  }
  float* scales(int which, uint32_t l, uint32_t pos) const {
    return scales_ + vector_index(which, l, pos) * kv_heads_;
  }
  // Each head vector: scale = max|x| / 127, q = rint(x * 127 / max|x|) (ties to even, our
  // own rint: no libm), as the activation quantizer does (docs/NUMERICS.md).
  void store_i8(const float* x, int8_t* q, float* scale) const {
    for (uint32_t h = 0; h < kv_heads_; h++) {
      const float* xh = x + h * head_size_;
      int8_t* qh = q + h * head_size_;
      float amax = 0.0f;
      for (uint32_t i = 0; i < head_size_; i++) {
        const float a = xh[i] < 0 ? -xh[i] : xh[i];
        if (a > amax) amax = a;
      }
      scale[h] = amax / 127.0f;
      const float inv = amax == 0.0f ? 0.0f : 127.0f / amax;
      for (uint32_t i = 0; i < head_size_; i++) {
        const float r = rint_f32(xh[i] * inv);
        int32_t v = 0;
        if (r > 127.0f) {
          v = 127;
        } else if (r < -127.0f) {
          v = -127;
        } else if (r == r) {  // NaN quantizes to 0, never UB
          v = (int32_t)r;
        }
        qh[i] = (int8_t)v;
      }
    }
  }

  KvType type_ = KvType::kF32;
  uint32_t layers_ = 0, seq_ = 0, kv_dim_ = 0, kv_heads_ = 0, head_size_ = 0;
  uint8_t* mem_ = nullptr;
  float* scales_ = nullptr;
};

}  // namespace llmwire
