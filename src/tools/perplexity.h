// Teacher-forced perplexity of a text, optionally against a reference image (mean KL
// divergence and top-1 agreement), for quantization-quality comparisons.
#pragma once

#include <stdint.h>

#include <functional>
#include <string>

#include "tools/host_model.h"

namespace llmwire {

struct PerplexityResult {
  uint64_t documents = 0;
  uint64_t predictions = 0;  // next-token predictions scored
  double nll_sum = 0;        // natural log
  double perplexity = 0;
  // With a reference image:
  double ref_perplexity = 0;
  double mean_kl = 0;         // KL(reference || model), nats per prediction
  double top1_agreement = 0;  // fraction of positions with the same argmax
};

// Documents are separated by blank lines; each is encoded with BOS and cut at seq_len.
bool evaluate_perplexity(HostModel& model, HostModel* reference, const std::string& text,
                         PerplexityResult* out, std::string* err,
                         const std::function<void(uint64_t done, uint64_t total)>& progress = {});

}  // namespace llmwire
