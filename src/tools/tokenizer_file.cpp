#include "tools/tokenizer_file.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <algorithm>

#include "platform/host/output_file.h"

namespace llmwire {

namespace {

const char kFixHint[] =
    "use the tokenizer the model was trained with (tok512.bin for stories260K, llama2.c's "
    "tokenizer.bin for stories15M/42M/110M)";

uint32_t get_u32(const uint8_t* p) {
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

float get_f32(const uint8_t* p) {
  const uint32_t u = get_u32(p);
  float f;
  memcpy(&f, &u, 4);
  return f;
}

void put_u32(std::string* out, uint32_t v) {
  for (int i = 0; i < 4; i++) out->push_back((char)((v >> (8 * i)) & 0xFF));
}

// One file entry: its score and where its piece bytes are.
struct Entry {
  float score;
  size_t piece_pos;
  uint32_t len;
};

// Reads the entry at data[pos..); false with the reason in *what when the bytes cannot be one.
bool read_entry(const uint8_t* data, size_t len, size_t pos, Entry* e, std::string* what) {
  if (len - pos < 8) {
    *what = "ends inside an entry header";
    return false;
  }
  e->score = get_f32(data + pos);
  const int32_t n = (int32_t)get_u32(data + pos + 4);
  if (n < 0) {
    *what = "has a negative piece length (" + std::to_string(n) + ")";
    return false;
  }
  if ((uint32_t)n > Tokenizer::kMaxTokenLen) {
    *what = "has a piece length of " + std::to_string(n) + " bytes (the limit is " +
            std::to_string(Tokenizer::kMaxTokenLen) + ")";
    return false;
  }
  if ((size_t)n > len - pos - 8) {
    *what = "needs " + std::to_string(n) + " piece bytes but only " +
            std::to_string(len - pos - 8) + " remain (file truncated)";
    return false;
  }
  if (e->score != e->score) {
    *what = "has a NaN score";
    return false;
  }
  e->piece_pos = pos + 8;
  e->len = (uint32_t)n;
  return true;
}

bool fail(std::string* err, const std::string& msg) {
  if (err) *err = msg;
  return false;
}

}  // namespace

TokenizerData TokenizerBlob::view() const {
  TokenizerData d;
  d.vocab_size = vocab_size;
  d.max_token_len = max_token_len;
  d.scores = scores.data();
  d.offsets = offsets.data();
  // A vocabulary of empty pieces has no bytes; keep the pointer non-null for init().
  static const uint8_t kEmpty = 0;
  d.bytes = bytes.empty() ? &kEmpty : bytes.data();
  d.sorted = sorted.data();
  return d;
}

bool parse_tokenizer(const uint8_t* data, size_t len, uint32_t vocab_size, TokenizerBlob* out,
                     std::string* err) {
  *out = TokenizerBlob{};
  if (vocab_size == 0) return fail(err, "model vocabulary size is 0: the model header is broken");
  if (!data || len < 4) {
    return fail(err, "tokenizer file is too short (" + std::to_string(len) +
                         " bytes): not a llama2.c tokenizer.bin; " + kFixHint);
  }
  const int32_t header_max = (int32_t)get_u32(data);
  if (header_max < 0) {
    return fail(err, "tokenizer file starts with a negative max_token_length (" +
                         std::to_string(header_max) +
                         "): not a llama2.c tokenizer.bin (a model checkpoint?); " + kFixHint);
  }

  // Don't trust vocab_size for the reservation: the file bounds the real count.
  const size_t expect = std::min<size_t>(vocab_size, (len - 4) / 8);
  out->scores.reserve(expect);
  out->offsets.reserve(expect + 1);
  out->offsets.push_back(0);
  size_t pos = 4;
  uint32_t longest = 0;
  for (uint32_t i = 0; i < vocab_size; i++) {
    if (pos == len) {
      *out = TokenizerBlob{};
      return fail(err, "tokenizer has " + std::to_string(i) + " tokens but the model needs " +
                           std::to_string(vocab_size) + ": " + kFixHint);
    }
    Entry e;
    std::string what;
    if (!read_entry(data, len, pos, &e, &what)) {
      *out = TokenizerBlob{};
      return fail(err, "tokenizer entry " + std::to_string(i) + " (of the " +
                           std::to_string(vocab_size) + " the model needs) " + what +
                           ": the file is truncated or not a llama2.c tokenizer.bin; " + kFixHint);
    }
    out->scores.push_back(e.score);
    out->bytes.insert(out->bytes.end(), data + e.piece_pos, data + e.piece_pos + e.len);
    out->offsets.push_back((uint32_t)out->bytes.size());
    longest = std::max(longest, e.len);
    pos = e.piece_pos + e.len;
  }
  if (pos != len) {
    // Count what follows, so the message names the tokenizer's real size when it is one.
    size_t extra = 0, p = pos;
    Entry e;
    std::string what;
    while (p < len && read_entry(data, len, p, &e, &what)) {
      extra++;
      p = e.piece_pos + e.len;
    }
    *out = TokenizerBlob{};
    if (p == len) {
      return fail(err, "tokenizer has " + std::to_string(vocab_size + extra) +
                           " tokens but the model needs " + std::to_string(vocab_size) +
                           " (it belongs to a model with a larger vocabulary): " + kFixHint);
    }
    return fail(err, "tokenizer file has " + std::to_string(len - pos) +
                         " unexpected bytes after the " + std::to_string(vocab_size) +
                         " tokens the model needs: the file is garbled or not a llama2.c "
                         "tokenizer.bin; " +
                         kFixHint);
  }
  if (longest == 0) {
    *out = TokenizerBlob{};
    return fail(err,
                "tokenizer pieces are all empty: the file is garbled; " + std::string(kFixHint));
  }

  out->vocab_size = vocab_size;
  out->max_token_len = longest;
  out->sorted.resize(vocab_size);
  for (uint32_t i = 0; i < vocab_size; i++) out->sorted[i] = i;
  const std::vector<uint8_t>& b = out->bytes;
  const std::vector<uint32_t>& off = out->offsets;
  // Bytewise (unsigned, like strcmp), a prefix first, then id: the order lookup relies on.
  std::sort(out->sorted.begin(), out->sorted.end(), [&](uint32_t x, uint32_t y) {
    const uint8_t* xb = b.data() + off[x];
    const uint8_t* yb = b.data() + off[y];
    const size_t xl = off[x + 1] - off[x], yl = off[y + 1] - off[y];
    const size_t n = std::min(xl, yl);
    const int c = n ? memcmp(xb, yb, n) : 0;
    if (c != 0) return c < 0;
    if (xl != yl) return xl < yl;
    return x < y;
  });
  return true;
}

bool load_tokenizer_file(const std::string& path, uint32_t vocab_size, TokenizerBlob* out,
                         std::string* err) {
  FILE* f = fopen(path.c_str(), "rb");
  if (!f) {
    return fail(err, path + ": cannot open (" + strerror(errno) +
                         "): check the path of the tokenizer file");
  }
  std::vector<uint8_t> data;
  uint8_t chunk[65536];
  size_t got;
  while ((got = fread(chunk, 1, sizeof(chunk), f)) > 0) data.insert(data.end(), chunk, chunk + got);
  const bool read_error = ferror(f) != 0;
  fclose(f);
  if (read_error) return fail(err, path + ": read error: check the file and the disk");
  std::string why;
  if (!parse_tokenizer(data.data(), data.size(), vocab_size, out, &why)) {
    return fail(err, path + ": " + why);
  }
  return true;
}

bool write_tokenizer_file(const std::string& path, const std::vector<std::string>& pieces,
                          const std::vector<float>& scores, std::string* err) {
  if (pieces.size() != scores.size()) {
    return fail(err, "tokenizer has " + std::to_string(pieces.size()) + " pieces but " +
                         std::to_string(scores.size()) + " scores: give one score per piece");
  }
  size_t longest = 0;
  for (size_t i = 0; i < pieces.size(); i++) {
    if (pieces[i].size() > Tokenizer::kMaxTokenLen) {
      return fail(err, "tokenizer piece " + std::to_string(i) + " is " +
                           std::to_string(pieces[i].size()) + " bytes long (the limit is " +
                           std::to_string(Tokenizer::kMaxTokenLen) + ")");
    }
    longest = std::max(longest, pieces[i].size());
  }
  std::string buf;
  put_u32(&buf, (uint32_t)longest);
  for (size_t i = 0; i < pieces.size(); i++) {
    uint32_t bits;
    memcpy(&bits, &scores[i], 4);
    put_u32(&buf, bits);
    put_u32(&buf, (uint32_t)pieces[i].size());
    buf += pieces[i];
  }
  OutputFile f;
  if (!f.open(path, {}, err)) return false;
  f.write(buf.data(), buf.size());
  return f.commit(err);
}

}  // namespace llmwire
