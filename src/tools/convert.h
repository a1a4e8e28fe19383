// llama2.c checkpoint + tokenizer -> llmwire image, with progress and a size budget.
#pragma once

#include <stdint.h>

#include <functional>
#include <string>
#include <vector>

#include "engine/image_format.h"

namespace llmwire {

struct ConvertOptions {
  std::string checkpoint_path;
  std::string tokenizer_path;
  std::string output_path;
  WeightType quant = WeightType::kQ4;
  uint32_t group = 32;
  uint32_t seq_len = 0;  // 0: the checkpoint's
  KvType kv = KvType::kF32;
  std::string model_name;  // default: checkpoint file stem
};

// Bytes per tensor family, for the budget table. params counts weights (0 for the tokenizer;
// 0 for the classifier when it is the embedding). The lines do not add up to image_bytes: the
// header, tensor table and 64-byte alignment gaps are the rest.
struct BudgetLine {
  std::string family;  // "embedding", "attention", "ffn", "norms", "classifier", "tokenizer"
  uint64_t params = 0;
  uint64_t bytes = 0;
  std::string note;  // e.g. "shared with the embedding (no extra bytes)"
};

struct ConvertReport {
  std::vector<BudgetLine> lines;
  uint64_t image_bytes = 0;
  uint64_t weight_bytes_per_token = 0;  // bytes of weights read per generated token
  uint64_t model_id = 0;                // id written into the image
};

// progress(done, total, what) is called as tensors are encoded.
using ProgressFn = std::function<void(uint64_t done, uint64_t total, const char* what)>;

bool convert_checkpoint(const ConvertOptions& opts, ConvertReport* report,
                        const ProgressFn& progress, std::string* err);

}  // namespace llmwire
