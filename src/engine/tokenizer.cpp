#include "engine/tokenizer.h"

#include <string.h>

namespace llmwire {

namespace {

// The arrays live in the image (4-byte aligned, little-endian); memcpy keeps the reads legal
// even if a caller hands us a less aligned view.
inline uint32_t read_u32(const uint32_t* p, size_t i) {
  uint32_t v;
  memcpy(&v, reinterpret_cast<const uint8_t*>(p) + 4 * i, 4);
  return v;
}

// Sorted ids are u16 when the vocabulary allows (saves 64 KB of flash at 32000 tokens).
inline uint32_t read_sorted(const void* p, uint32_t width, size_t i) {
  const uint8_t* b = static_cast<const uint8_t*>(p) + width * i;
  return width == 2 ? (uint32_t)(b[0] | (b[1] << 8))
                    : (uint32_t)b[0] | ((uint32_t)b[1] << 8) | ((uint32_t)b[2] << 16) |
                          ((uint32_t)b[3] << 24);
}

inline float read_f32(const float* p, size_t i) {
  float v;
  memcpy(&v, reinterpret_cast<const uint8_t*>(p) + 4 * i, 4);
  return v;
}

// Byte order of strcmp (unsigned bytes), a prefix before its extensions. Ids are not compared:
// lookup finds the first of equal pieces, i.e. the lowest id.
int compare_bytes(const uint8_t* a, size_t alen, const uint8_t* b, size_t blen) {
  const size_t n = alen < blen ? alen : blen;
  const int c = n ? memcmp(a, b, n) : 0;
  if (c != 0) return c;
  if (alen == blen) return 0;
  return alen < blen ? -1 : 1;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

}  // namespace

Status Tokenizer::init(const TokenizerData& data) {
  data_ = TokenizerData{};
  // max_token_len bounds the merge buffer and prunes lookups, so it must be set and sane.
  if (data.vocab_size == 0 || !data.scores || !data.offsets || !data.bytes || !data.sorted ||
      data.max_token_len == 0 || data.max_token_len > kMaxTokenLen ||
      (data.sorted_width != 2 && data.sorted_width != 4) ||
      (data.sorted_width == 2 && data.vocab_size > 65536)) {
    return Status::kBadTokenizer;
  }
  data_ = data;
  for (int i = 0; i < 256; i++) {
    byte_pieces_[i][0] = (char)(unsigned char)i;
    byte_pieces_[i][1] = 0;
  }
  return Status::kOk;
}

Piece Tokenizer::piece(int32_t token) const {
  if (token < 0 || (uint32_t)token >= data_.vocab_size) return Piece{"", 0};
  const uint32_t a = read_u32(data_.offsets, (size_t)token);
  const uint32_t b = read_u32(data_.offsets, (size_t)token + 1);
  if (b < a) return Piece{"", 0};  // the image reader rejects this; never read backwards
  return Piece{reinterpret_cast<const char*>(data_.bytes) + a, (size_t)(b - a)};
}

int32_t Tokenizer::lookup(const char* s, size_t len) const {
  if (data_.vocab_size == 0 || (!s && len > 0)) return -1;
  const uint8_t* key = reinterpret_cast<const uint8_t*>(s);
  // Lower bound: the first sorted entry not below the key.
  uint32_t lo = 0, hi = data_.vocab_size;
  while (lo < hi) {
    const uint32_t mid = lo + (hi - lo) / 2;
    const Piece p = piece((int32_t)read_sorted(data_.sorted, data_.sorted_width, mid));
    if (compare_bytes(reinterpret_cast<const uint8_t*>(p.data), p.len, key, len) < 0) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  if (lo == data_.vocab_size) return -1;
  const int32_t id = (int32_t)read_sorted(data_.sorted, data_.sorted_width, lo);
  const Piece p = piece(id);
  if (compare_bytes(reinterpret_cast<const uint8_t*>(p.data), p.len, key, len) != 0) return -1;
  return id;
}

Status Tokenizer::encode(const char* text, size_t len, bool bos, bool eos, int32_t* tokens,
                         size_t capacity, size_t* n_tokens) const {
  if (!tokens || !n_tokens || (!text && len > 0)) return Status::kBadArgument;
  if (data_.vocab_size == 0) return Status::kBadTokenizer;
  // Worst case: BOS, dummy prefix, one token per byte, EOS. Written without overflow.
  if (capacity < 3 || capacity - 3 < len) return Status::kBadArgument;
  *n_tokens = 0;
  size_t n = 0;
  const uint32_t vocab = data_.vocab_size;
  // A byte with no piece of its own becomes <0xNN> (id byte + 3) as in llama2.c; a vocabulary
  // too small for byte tokens gets <unk> (0) instead of an out-of-range id.
  auto byte_token = [vocab](uint8_t b) -> int32_t {
    return (uint32_t)b + 3 < vocab ? (int32_t)b + 3 : 0;
  };

  if (bos) tokens[n++] = (int32_t)data_.bos_id;
  if (len > 0) {
    // SentencePiece's add_dummy_prefix: the text is encoded as if it started with a space.
    const int32_t space = lookup(" ", 1);
    tokens[n++] = space >= 0 ? space : byte_token(' ');
  }

  // One token per UTF-8 codepoint when the vocabulary has it, else one per byte. Like
  // llama2.c, a codepoint is a lead byte plus up to 3 continuation bytes; stray continuation
  // bytes are grouped the same way and then fall back to bytes.
  char cp[4];
  size_t cp_len = 0;
  for (size_t i = 0; i < len; i++) {
    cp[cp_len++] = text[i];
    const bool next_continues = i + 1 < len && ((uint8_t)text[i + 1] & 0xC0) == 0x80;
    if (next_continues && cp_len < 4) continue;
    const int32_t id = lookup(cp, cp_len);
    if (id >= 0) {
      tokens[n++] = id;
    } else {
      for (size_t j = 0; j < cp_len; j++) tokens[n++] = byte_token((uint8_t)cp[j]);
    }
    cp_len = 0;
  }

  // Merge the adjacent pair with the best score until none merges. Strict '>' keeps the first
  // pair on ties, and the -1e10 floor is llama2.c's starting best score.
  char buf[kMaxTokenLen * 2 + 2];
  const size_t max_len = data_.max_token_len;
  auto pair_id = [&](int32_t left, int32_t right) -> int32_t {
    const Piece a = piece(left), b = piece(right);
    // No piece is longer than max_token_len, so a longer pair cannot be in the vocabulary.
    if (a.len + b.len > max_len) return -1;
    memcpy(buf, a.data, a.len);
    memcpy(buf + a.len, b.data, b.len);
    return lookup(buf, a.len + b.len);
  };
  if (vocab <= 0xFFFF) {
    // Each entry keeps its token in the low 16 bits and (id + 1) of the pair it forms with
    // its right neighbour in the high 16 bits (0: no pair). A merge changes only the pairs
    // on either side of it, so only those are looked up again.
    auto pack = [](int32_t token, int32_t pair) -> int32_t {
      return (int32_t)(((uint32_t)(pair + 1) << 16) | (uint32_t)token);
    };
    auto token_at = [tokens](size_t i) { return (int32_t)((uint32_t)tokens[i] & 0xFFFF); };
    for (size_t i = 0; i + 1 < n; i++)
      tokens[i] = pack(tokens[i], pair_id(tokens[i], tokens[i + 1]));
    for (;;) {
      float best_score = -1e10f;
      int32_t best_id = -1;
      size_t best_idx = 0;
      for (size_t i = 0; i + 1 < n; i++) {
        const uint32_t p = (uint32_t)tokens[i] >> 16;
        if (p == 0) continue;
        const float score = read_f32(data_.scores, p - 1);
        if (score > best_score) {
          best_score = score;
          best_id = (int32_t)p - 1;
          best_idx = i;
        }
      }
      if (best_id < 0) break;
      memmove(tokens + best_idx + 1, tokens + best_idx + 2, (n - best_idx - 2) * sizeof(int32_t));
      n--;
      tokens[best_idx] =
          best_idx + 1 < n ? pack(best_id, pair_id(best_id, token_at(best_idx + 1))) : best_id;
      if (best_idx > 0) {
        const int32_t left = token_at(best_idx - 1);
        tokens[best_idx - 1] = pack(left, pair_id(left, best_id));
      }
    }
    for (size_t i = 0; i < n; i++) tokens[i] = token_at(i);
  } else {
    for (;;) {
      float best_score = -1e10f;
      int32_t best_id = -1;
      size_t best_idx = 0;
      for (size_t i = 0; i + 1 < n; i++) {
        const int32_t id = pair_id(tokens[i], tokens[i + 1]);
        if (id < 0) continue;
        const float score = read_f32(data_.scores, (size_t)id);
        if (score > best_score) {
          best_score = score;
          best_id = id;
          best_idx = i;
        }
      }
      if (best_id < 0) break;
      tokens[best_idx] = best_id;
      for (size_t i = best_idx + 1; i + 1 < n; i++) tokens[i] = tokens[i + 1];
      n--;
    }
  }

  if (eos) tokens[n++] = (int32_t)data_.eos_id;
  *n_tokens = n;
  return Status::kOk;
}

Piece Tokenizer::decode(int32_t prev, int32_t token) const {
  Piece p = piece(token);
  // SentencePiece drops the dummy-prefix space of the first word after BOS.
  if (prev >= 0 && (uint32_t)prev == data_.bos_id && p.len > 0 && p.data[0] == ' ') {
    p.data++;
    p.len--;
  }
  // Raw byte tokens are spelled "<0xNN>" in the vocabulary.
  if (p.len == 6 && p.data[0] == '<' && p.data[1] == '0' && p.data[2] == 'x' && p.data[5] == '>') {
    const int hi = hex_digit(p.data[3]), lo = hex_digit(p.data[4]);
    if (hi >= 0 && lo >= 0) return Piece{byte_pieces_[hi * 16 + lo], 1};
  }
  return p;
}

}  // namespace llmwire
