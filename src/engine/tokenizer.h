// llama2.c-compatible BPE tokenizer over data read in place from the image (no allocation).
// Same ids and text as llama2.c's run.c: merges by score, byte fallback <0xNN>, a dummy
// leading space before non-empty text, and the space after BOS stripped on decode.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "engine/status.h"

namespace llmwire {

// Views into the image's tokenizer tensors (little-endian, 4-byte aligned).
struct TokenizerData {
  uint32_t vocab_size = 0;
  uint32_t max_token_len = 0;         // longest piece, bytes
  const float* scores = nullptr;      // [vocab]
  const uint32_t* offsets = nullptr;  // [vocab + 1] into bytes
  const uint8_t* bytes = nullptr;     // concatenated pieces
  const void* sorted = nullptr;       // [vocab] ids sorted by piece (bytewise, shorter first, id)
  uint32_t sorted_width = 4;          // bytes per sorted id: 2 (vocab <= 65536) or 4
  uint32_t bos_id = 1;
  uint32_t eos_id = 2;
};

struct Piece {
  const char* data;
  size_t len;
};

class Tokenizer {
 public:
  static constexpr uint32_t kMaxTokenLen = 256;  // longest piece accepted

  Status init(const TokenizerData& data);

  // Encodes text[0..len) (UTF-8; invalid bytes fall back to byte tokens). `tokens` must hold
  // len + 3 entries; fewer gives kBadArgument. llama2.c's greedy BPE (best-scoring pair first,
  // leftmost on ties); each pair is looked up once, so a merge costs a scan, not a scan of
  // lookups (vocabularies up to 65535 pieces).
  Status encode(const char* text, size_t len, bool bos, bool eos, int32_t* tokens, size_t capacity,
                size_t* n_tokens) const;

  // The text of `token` following `prev`: strips the leading space after BOS and turns
  // <0xNN> into the single byte. The returned bytes live in the image or in this object.
  Piece decode(int32_t prev, int32_t token) const;

  // Raw piece of a token.
  Piece piece(int32_t token) const;
  // Id of a piece, or -1.
  int32_t lookup(const char* s, size_t len) const;

  uint32_t vocab_size() const { return data_.vocab_size; }
  uint32_t bos_id() const { return data_.bos_id; }
  uint32_t eos_id() const { return data_.eos_id; }
  // Longest piece in bytes: every token covers at most this many bytes of text, so a text of
  // L bytes needs at least L / max_token_len tokens (a length check before encoding).
  uint32_t max_token_len() const { return data_.max_token_len; }

 private:
  TokenizerData data_;
  char byte_pieces_[256][2] = {};  // decoded <0xNN> bytes
};

}  // namespace llmwire
