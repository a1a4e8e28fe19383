// The image header, decoded. encode_header/decode_header are the only code that knows the
// byte layout of the header (docs/FORMAT.md).
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "engine/config.h"
#include "engine/image_format.h"
#include "engine/status.h"

namespace llmwire {

struct ImageInfo {
  uint32_t version = kImageVersion;
  uint32_t header_size = kHeaderSize;
  uint64_t file_size = 0;
  uint64_t model_id = 0;
  uint32_t payload_crc = 0;
  uint32_t tensor_count = 0;
  uint32_t table_offset = kHeaderSize;
  uint32_t flags = 0;
  ModelConfig config;  // shared_classifier mirrors kFlagSharedClassifier
  WeightType weight_type = WeightType::kF32;
  uint32_t group_size = 0;
  KvType kv_type = KvType::kF32;
  uint32_t stage_index = 0;
  uint32_t stage_count = 1;
  uint32_t layer_begin = 0;
  uint32_t layer_end = 0;
  float norm_eps = 1e-5f;
  float rope_theta = 10000.0f;
  uint32_t tok_max_len = 0;
  uint32_t bos_id = 1;
  uint32_t eos_id = 2;
  char model_name[32] = {};
  uint32_t quant_method = 0;  // QuantMethod bits
  uint32_t calib_tokens = 0;
  uint32_t calib_crc = 0;
  // CRC-32C of the token ids of the /selftest story as the PC tells it with this image's
  // settings (runtime/head_console.h); 0 when not computed. Written by convert and split.
  uint32_t selftest_digest = 0;
  // Classifier rows this stage computes when kFlagClassifierSlice is set (else both 0).
  uint32_t cls_row_begin = 0;
  uint32_t cls_row_end = 0;

  bool has(ImageFlags f) const { return (flags & f) != 0; }
};

// Writes the 256-byte header including its header CRC (payload_crc is taken from info).
void encode_header(const ImageInfo& info, uint8_t out[kHeaderSize]);
// Decodes and checks magic, version, header size and header CRC (nothing else).
Status decode_header(const uint8_t* data, size_t len, ImageInfo* info);

// Little-endian loads/stores that are safe at any alignment.
inline uint16_t load_u16(const uint8_t* p) {
  return (uint16_t)(p[0] | (p[1] << 8));
}
inline uint32_t load_u32(const uint8_t* p) {
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
inline uint64_t load_u64(const uint8_t* p) {
  return (uint64_t)load_u32(p) | ((uint64_t)load_u32(p + 4) << 32);
}
inline void store_u16(uint8_t* p, uint16_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
}
inline void store_u32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
inline void store_u64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

}  // namespace llmwire
