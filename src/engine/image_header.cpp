#include "engine/image_header.h"

#include <string.h>

#include "engine/crc32c.h"
#include "engine/fp16.h"

namespace llmwire {

void encode_header(const ImageInfo& info, uint8_t out[kHeaderSize]) {
  memset(out, 0, kHeaderSize);
  memcpy(out + hdr::kMagic, kImageMagic, 8);
  store_u32(out + hdr::kVersion, info.version);
  store_u32(out + hdr::kHeaderSize, info.header_size);
  store_u64(out + hdr::kFileSize, info.file_size);
  store_u64(out + hdr::kModelId, info.model_id);
  store_u32(out + hdr::kPayloadCrc, info.payload_crc);
  store_u32(out + hdr::kTensorCount, info.tensor_count);
  store_u32(out + hdr::kTableOffset, info.table_offset);
  uint32_t flags = info.flags & ~(uint32_t)kFlagSharedClassifier;
  if (info.config.shared_classifier) flags |= kFlagSharedClassifier;
  store_u32(out + hdr::kFlags, flags);
  const ModelConfig& c = info.config;
  const uint32_t dims[7] = {c.dim,        c.hidden_dim, c.n_layers, c.n_heads,
                            c.n_kv_heads, c.vocab_size, c.seq_len};
  for (int i = 0; i < 7; i++) store_u32(out + hdr::kDim + 4 * i, dims[i]);
  store_u32(out + hdr::kWeightType, (uint32_t)info.weight_type);
  store_u32(out + hdr::kGroupSize, info.group_size);
  store_u32(out + hdr::kKvType, (uint32_t)info.kv_type);
  store_u32(out + hdr::kStageIndex, info.stage_index);
  store_u32(out + hdr::kStageCount, info.stage_count);
  store_u32(out + hdr::kLayerBegin, info.layer_begin);
  store_u32(out + hdr::kLayerEnd, info.layer_end);
  store_u32(out + hdr::kNormEps, bits_from_f32(info.norm_eps));
  store_u32(out + hdr::kRopeTheta, bits_from_f32(info.rope_theta));
  store_u32(out + hdr::kTokMaxLen, info.tok_max_len);
  store_u32(out + hdr::kBosId, info.bos_id);
  store_u32(out + hdr::kEosId, info.eos_id);
  memcpy(out + hdr::kModelName, info.model_name, sizeof(info.model_name));
  out[hdr::kModelName + 31] = 0;
  store_u32(out + hdr::kQuantMethod, info.quant_method);
  store_u32(out + hdr::kCalibTokens, info.calib_tokens);
  store_u32(out + hdr::kCalibCrc, info.calib_crc);
  store_u32(out + hdr::kClsRowBegin, info.cls_row_begin);
  store_u32(out + hdr::kClsRowEnd, info.cls_row_end);
  store_u32(out + hdr::kSelftestDigest, info.selftest_digest);
  store_u32(out + hdr::kHeaderCrc, crc32c(out, hdr::kHeaderCrc));
}

Status decode_header(const uint8_t* data, size_t len, ImageInfo* info) {
  if (data == nullptr || len < kHeaderSize) return Status::kImageTooSmall;
  if (memcmp(data + hdr::kMagic, kImageMagic, 8) != 0) return Status::kBadMagic;
  info->version = load_u32(data + hdr::kVersion);
  if (info->version != kImageVersion) return Status::kBadVersion;
  info->header_size = load_u32(data + hdr::kHeaderSize);
  if (info->header_size != kHeaderSize) return Status::kBadHeaderSize;
  if (load_u32(data + hdr::kHeaderCrc) != crc32c(data, hdr::kHeaderCrc)) {
    return Status::kHeaderCorrupt;
  }
  info->file_size = load_u64(data + hdr::kFileSize);
  info->model_id = load_u64(data + hdr::kModelId);
  info->payload_crc = load_u32(data + hdr::kPayloadCrc);
  info->tensor_count = load_u32(data + hdr::kTensorCount);
  info->table_offset = load_u32(data + hdr::kTableOffset);
  info->flags = load_u32(data + hdr::kFlags);
  ModelConfig& c = info->config;
  c.dim = load_u32(data + hdr::kDim + 0);
  c.hidden_dim = load_u32(data + hdr::kDim + 4);
  c.n_layers = load_u32(data + hdr::kDim + 8);
  c.n_heads = load_u32(data + hdr::kDim + 12);
  c.n_kv_heads = load_u32(data + hdr::kDim + 16);
  c.vocab_size = load_u32(data + hdr::kDim + 20);
  c.seq_len = load_u32(data + hdr::kDim + 24);
  c.shared_classifier = (info->flags & kFlagSharedClassifier) != 0;
  info->weight_type = (WeightType)load_u32(data + hdr::kWeightType);
  info->group_size = load_u32(data + hdr::kGroupSize);
  info->kv_type = (KvType)load_u32(data + hdr::kKvType);
  info->stage_index = load_u32(data + hdr::kStageIndex);
  info->stage_count = load_u32(data + hdr::kStageCount);
  info->layer_begin = load_u32(data + hdr::kLayerBegin);
  info->layer_end = load_u32(data + hdr::kLayerEnd);
  info->norm_eps = f32_from_bits(load_u32(data + hdr::kNormEps));
  info->rope_theta = f32_from_bits(load_u32(data + hdr::kRopeTheta));
  info->tok_max_len = load_u32(data + hdr::kTokMaxLen);
  info->bos_id = load_u32(data + hdr::kBosId);
  info->eos_id = load_u32(data + hdr::kEosId);
  memcpy(info->model_name, data + hdr::kModelName, sizeof(info->model_name));
  info->model_name[31] = 0;
  info->quant_method = load_u32(data + hdr::kQuantMethod);
  info->calib_tokens = load_u32(data + hdr::kCalibTokens);
  info->calib_crc = load_u32(data + hdr::kCalibCrc);
  info->cls_row_begin = load_u32(data + hdr::kClsRowBegin);
  info->cls_row_end = load_u32(data + hdr::kClsRowEnd);
  info->selftest_digest = load_u32(data + hdr::kSelftestDigest);
  return Status::kOk;
}

}  // namespace llmwire
