// Calibration statistics for quantization (issue 10): runs the f32 checkpoint over a text and
// collects, for the input of every linear layer, the mean square of each input column (the
// "importance" of that column) and, when asked, the input Gram matrix XᵀX / tokens.
//
// The forward pass is a plain host-side f32 one over the checkpoint (llama2.c order, the
// engine's own exp/sincos/sqrt), computed document by document and layer by layer; statistics
// are summed in double in a fixed order (documents, then positions), so the result does not
// depend on the thread count and the converter's bytes are reproducible.
#pragma once

#include <stdint.h>

#include <functional>
#include <string>
#include <vector>

#include "engine/config.h"
#include "tools/checkpoint.h"
#include "tools/tokenizer_file.h"

namespace llmwire {

// Where a linear layer reads its input from. Per layer: the attention norm output (wq, wk,
// wv), the attention output (wo), the FFN norm output (w1, w3) and the FFN hidden state (w2).
enum class CalibSite : uint32_t { kAttnIn = 0, kAttnOut = 1, kFfnIn = 2, kFfnHidden = 3 };
constexpr uint32_t kCalibSitesPerLayer = 4;

struct CalibText {
  std::vector<std::vector<int32_t>> chunks;  // each starts with BOS, at most seq_len tokens
  uint64_t tokens = 0;
  uint64_t byte_fallback_tokens = 0;  // <0xNN> pieces among them
  uint32_t text_crc = 0;              // CRC-32C of the file's bytes
  bool truncated = false;             // more text than max_tokens
};

// Reads and tokenizes a calibration text: documents separated by blank lines (as
// `perplexity`), each starting with BOS and cut into chunks of at most seq_len tokens, up to
// max_tokens in all. Refuses, with a sentence in *err: a missing, empty, binary or huge file,
// text too short to calibrate on, and text mostly outside the tokenizer's vocabulary.
bool load_calibration_text(const std::string& path, const TokenizerBlob& tok, uint32_t seq_len,
                           uint64_t max_tokens, CalibText* out, std::string* err);

struct CalibStats {
  uint32_t layers = 0;
  uint64_t tokens = 0;
  // msq[layer * 4 + site]: per-column mean of x² over every calibration token; the last entry
  // (index layers * 4) is the final norm output (the classifier's input).
  std::vector<std::vector<double>> msq;
  // gram[same index]: n*n row-major XᵀX / tokens, only when collect_calibration was asked for
  // it (empty otherwise).
  std::vector<std::vector<double>> gram;

  const std::vector<double>& site_msq(uint32_t layer, CalibSite s) const {
    return msq[(size_t)layer * kCalibSitesPerLayer + (uint32_t)s];
  }
  const std::vector<double>* site_gram(uint32_t layer, CalibSite s) const {
    const size_t i = (size_t)layer * kCalibSitesPerLayer + (uint32_t)s;
    return i < gram.size() && !gram[i].empty() ? &gram[i] : nullptr;
  }
  // Per classifier row v, the n*n Gram matrix of the classifier's input weighted by the
  // probability the f32 model gives token v, E[p_v x xᵀ] (vocab blocks, row-major): the
  // diagonal block of the KL's Hessian for that row. Collected with the Gram matrices when
  // vocab * dim² <= kMaxClassifierGram (small models); empty otherwise.
  std::vector<double> cls_gram;

  const std::vector<double>& final_msq() const { return msq.back(); }
};

// The matrices the calibration forward pass reads (row-major f32, checkpoint layout); a copy
// with one pointer swapped runs the model with that matrix changed.
struct CalibWeights {
  struct Layer {
    const float *wq, *wk, *wv, *wo, *w1, *w2, *w3;
  };
  const float* tok_emb = nullptr;
  const float* wcls = nullptr;  // == tok_emb when shared
  std::vector<Layer> layers;
  static CalibWeights of(const Checkpoint& ck);
};

constexpr uint64_t kMaxClassifierGram = 1u << 22;

using CalibProgressFn = std::function<void(uint64_t done_tokens, uint64_t total_tokens)>;

// Runs the checkpoint (config c: its seq_len bounds the chunks) over the text.
// threads: 0 = the host's cores; the statistics never depend on it.
bool collect_calibration(const Checkpoint& ck, const ModelConfig& c, const CalibText& text,
                         bool gram, unsigned threads, const CalibProgressFn& progress,
                         CalibStats* out, std::string* err);

// The f32 model's input at every site (CalibStats index) for every calibration token, in
// text order: site[i] is tokens x n floats. For small models (it holds them all).
struct SiteActivations {
  std::vector<std::vector<float>> site;
};
bool record_sites(const Checkpoint& ck, const ModelConfig& c, const CalibText& text,
                  unsigned threads, SiteActivations* out, std::string* err);

// Runs a variant of the checkpoint over the text and collects, at one site, its input Gram
// matrix E[x̃ x̃ᵀ] and the cross moment E[x x̃ᵀ] with the f32 model's input x there (from
// `ref`), both n*n row-major: what error compensation needs to make a quantized matrix
// reproduce the f32 model's output from the inputs the quantized model actually gives it.
bool collect_site_pair(const Checkpoint& ck, const ModelConfig& c, const CalibText& text,
                       const CalibWeights& variant, size_t site, const SiteActivations& ref,
                       unsigned threads, std::vector<double>* gram, std::vector<double>* cross,
                       std::string* err);

// Mean KL(f32 || variant) per predicted position of the text, for each weight variant: the
// measured sensitivity of the model to a change of some of its matrices.
bool measure_kl(const Checkpoint& ck, const ModelConfig& c, const CalibText& text,
                const std::vector<CalibWeights>& variants, unsigned threads,
                const CalibProgressFn& progress, std::vector<double>* kl, std::string* err);

}  // namespace llmwire
