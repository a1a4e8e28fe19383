// Synthetic llama2.c checkpoints with random weights of a given shape (for size and speed
// work where real weights are absent), and a synthetic tokenizer of any vocabulary size.
#pragma once

#include <stdint.h>

#include <string>

#include "engine/config.h"

namespace llmwire {

// Known shapes: stories260K, stories15M, stories42M, stories110M. Returns false if unknown.
bool shape_config(const std::string& name, ModelConfig* out);

// Writes a legacy-format checkpoint (negative vocab in the header when the classifier is not
// shared). Weights: deterministic from `seed`, roughly N(0, 1/fan_in) so activations stay O(1);
// norm weights near 1.
bool synth_checkpoint(const ModelConfig& c, uint64_t seed, const std::string& path,
                      std::string* err);
// A valid llama2.c tokenizer.bin with `vocab_size` pieces: <unk>, <s>, </s>, the 256 byte
// tokens <0x00>..<0xFF> (when the vocab has room), printable ASCII, then merged pairs.
bool synth_tokenizer(uint32_t vocab_size, uint64_t seed, const std::string& path, std::string* err);

}  // namespace llmwire
