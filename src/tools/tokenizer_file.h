// llama2.c tokenizer.bin files (host side): parse into the arrays the image stores, and
// write one (for synthetic models).
// File layout: int32 max_token_length; then per token: float32 score, int32 len, len bytes.
// The vocabulary size is not in the file: it comes from the model.
#pragma once

#include <stdint.h>

#include <string>
#include <vector>

#include "engine/tokenizer.h"

namespace llmwire {

struct TokenizerBlob {
  uint32_t vocab_size = 0;
  uint32_t max_token_len = 0;
  std::vector<float> scores;      // [vocab]
  std::vector<uint32_t> offsets;  // [vocab + 1]
  std::vector<uint8_t> bytes;     // concatenated pieces
  std::vector<uint32_t> sorted;   // ids sorted by piece bytes (shorter first on prefix, then id)

  TokenizerData view() const;
};

// Reads exactly `vocab_size` entries; refuses short/garbled files with a message in *err
// that says what is wrong (e.g. "tokenizer has 512 tokens but the model needs 32000").
bool parse_tokenizer(const uint8_t* data, size_t len, uint32_t vocab_size, TokenizerBlob* out,
                     std::string* err);
bool load_tokenizer_file(const std::string& path, uint32_t vocab_size, TokenizerBlob* out,
                         std::string* err);
bool write_tokenizer_file(const std::string& path, const std::vector<std::string>& pieces,
                          const std::vector<float>& scores, std::string* err);

}  // namespace llmwire
