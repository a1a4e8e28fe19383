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
  // Calibrated quantization (docs/QUANTIZATION.md). Empty calib_path: plain quantization.
  std::string calib_path;             // text the f32 model is run over
  uint64_t calib_max_tokens = 16384;  // tokens of it used at most
  bool error_compensation = false;    // GPTQ-style, within each row's groups (needs calib)
  uint64_t budget_bytes = 0;          // > 0: Q4/Q8 per matrix, image at most this size
  // Non-empty: Q4/Q8 per matrix such that the planner fits the image on fit_boards boards of
  // this profile (tools/planner.h), at the model's context and `kv`. Excludes budget_bytes.
  std::string fit_board;
  uint32_t fit_boards = 1;
  unsigned threads = 0;  // 0: the host's cores (bytes never depend on it)
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

struct CalibReport {
  bool used = false;
  uint64_t tokens = 0, chunks = 0;
  uint64_t byte_fallback_tokens = 0;
  bool truncated = false;  // the text had more than calib_max_tokens
  uint32_t text_crc = 0;
  uint32_t q8_matrices = 0, matrices = 0;  // mixed precision: how many matrices went Q8
  bool measured_sensitivity = false;       // by KL (else by weighted error), --budget
  bool sequential = false;  // --gptq: each matrix fitted to the quantized model's inputs
};

struct ConvertReport {
  CalibReport calib;
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
