// llama2.c legacy checkpoints (the stories*.bin format), read fully into memory.
// 7 x int32 header (dim, hidden, layers, heads, kv_heads, vocab, seq; negative vocab means a
// separate classifier), then float32 tensors: tok_emb, rms_att, wq, wk, wv, wo, rms_ffn, w1,
// w2, w3, rms_final, freq_cis_real, freq_cis_imag (skipped), [wcls].
#pragma once

#include <string>
#include <vector>

#include "engine/config.h"

namespace llmwire {

struct Checkpoint {
  ModelConfig config;
  std::vector<float> data;  // every float after the header, as in the file
  // Offsets (in floats) into data. wcls == tok_emb when the classifier is shared.
  size_t tok_emb = 0, rms_att = 0, wq = 0, wk = 0, wv = 0, wo = 0, rms_ffn = 0, w1 = 0, w2 = 0,
         w3 = 0, rms_final = 0, wcls = 0;

  const float* ptr(size_t off) const { return data.data() + off; }
};

// Validates the header (positive, sane, consistent dimensions) and that the file size is
// exactly what the header implies; *err says what is wrong and what to do.
bool load_checkpoint(const std::string& path, Checkpoint* out, std::string* err);
// Number of bytes a checkpoint of this config has.
size_t checkpoint_bytes(const ModelConfig& c);
bool write_checkpoint(const std::string& path, const ModelConfig& c, const std::vector<float>& data,
                      std::string* err);

}  // namespace llmwire
