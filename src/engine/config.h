// Shape of a llama2.c-family model.
#pragma once

#include <stdint.h>

namespace llmwire {

struct ModelConfig {
  uint32_t dim = 0;         // transformer width
  uint32_t hidden_dim = 0;  // FFN width
  uint32_t n_layers = 0;
  uint32_t n_heads = 0;
  uint32_t n_kv_heads = 0;  // < n_heads: grouped-query attention
  uint32_t vocab_size = 0;
  uint32_t seq_len = 0;  // max context
  bool shared_classifier = true;

  uint32_t head_size() const { return n_heads ? dim / n_heads : 0; }
  uint32_t kv_dim() const { return n_heads ? dim / n_heads * n_kv_heads : 0; }
};

}  // namespace llmwire
