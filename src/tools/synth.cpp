// Synthetic checkpoints and tokenizers (see synth.h). Deterministic from the seed on every
// host: splitmix64, uniforms from the top 53 bits, an approximate normal as the scaled sum of
// four uniforms (no libm).
#include "tools/synth.h"

#include <stdio.h>

#include <algorithm>
#include <cmath>
#include <unordered_set>
#include <vector>

#include "engine/image_format.h"
#include "tools/checkpoint.h"
#include "tools/tokenizer_file.h"

namespace llmwire {
namespace {

struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed ^ 0x6a09e667f3bcc909ull) {}
  uint64_t next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  double uniform() { return (double)(next() >> 11) * (1.0 / 9007199254740992.0); }
  // Sum of 4 uniforms: mean 2, variance 1/3 -> scaled to mean 0, variance 1 (range +-3.46).
  double normal() {
    const double s4 = (uniform() + uniform()) + (uniform() + uniform());
    return (s4 - 2.0) * 1.7320508075688772;
  }
  uint32_t below(uint32_t n) { return (uint32_t)(next() % n); }
};

}  // namespace

bool shape_config(const std::string& name, ModelConfig* out) {
  struct Shape {
    const char* name;
    uint32_t d, h, l, nh, kv, v, seq;
  };
  static const Shape shapes[] = {
      {"stories260K", 64, 172, 5, 8, 4, 512, 512},
      {"stories15M", 288, 768, 6, 6, 6, 32000, 256},
      {"stories42M", 512, 1376, 8, 8, 8, 32000, 1024},
      {"stories110M", 768, 2048, 12, 12, 12, 32000, 1024},
  };
  for (const Shape& s : shapes) {
    if (name == s.name) {
      ModelConfig c;
      c.dim = s.d;
      c.hidden_dim = s.h;
      c.n_layers = s.l;
      c.n_heads = s.nh;
      c.n_kv_heads = s.kv;
      c.vocab_size = s.v;
      c.seq_len = s.seq;
      c.shared_classifier = true;  // all published tinyllamas share the classifier
      *out = c;
      return true;
    }
  }
  return false;
}

bool synth_checkpoint(const ModelConfig& c, uint64_t seed, const std::string& path,
                      std::string* err) {
  if (c.dim == 0 || c.hidden_dim == 0 || c.n_layers == 0 || c.n_heads == 0 || c.n_kv_heads == 0 ||
      c.vocab_size == 0 || c.seq_len == 0) {
    *err = "every dimension of the model shape must be positive";
    return false;
  }
  const uint64_t total_bytes = checkpoint_bytes(c);
  const uint64_t d = c.dim, h = c.hidden_dim, L = c.n_layers, V = c.vocab_size;
  const uint64_t kv = c.kv_dim();
  // write_checkpoint validates the shape; check the size first so a bad shape does not
  // allocate.
  if (c.dim > 65536 || c.n_layers > kMaxLayers || c.hidden_dim > (1u << 20) ||
      c.vocab_size > (1u << 20) || c.seq_len > (1u << 20) || total_bytes > (8ull << 30)) {
    *err = "model shape too large for a synthetic checkpoint (" + std::to_string(total_bytes) +
           " bytes)";
    return false;
  }
  std::vector<float> data;
  data.reserve((total_bytes - 28) / 4);
  Rng rng(seed);
  auto matrix = [&](uint64_t n, uint64_t fan_in) {
    const double sd = 1.0 / std::sqrt((double)fan_in);
    for (uint64_t i = 0; i < n; i++) data.push_back((float)(rng.normal() * sd));
  };
  auto norm = [&](uint64_t n) {
    for (uint64_t i = 0; i < n; i++) data.push_back((float)(1.0 + 0.05 * rng.normal()));
  };
  matrix(V * d, 1);       // token embedding: std 1
  norm(L * d);            // rms_att
  matrix(L * d * d, d);   // wq
  matrix(L * kv * d, d);  // wk
  matrix(L * kv * d, d);  // wv
  matrix(L * d * d, d);   // wo
  norm(L * d);            // rms_ffn
  matrix(L * h * d, d);   // w1
  matrix(L * d * h, h);   // w2
  matrix(L * h * d, d);   // w3
  norm(d);                // rms_final
  // freq_cis_real and freq_cis_imag (seq * head_size / 2 each): unused, zeros.
  data.insert(data.end(), (size_t)c.seq_len * c.head_size(), 0.0f);
  if (!c.shared_classifier) matrix(V * d, d);  // wcls
  return write_checkpoint(path, c, data, err);
}

// Pieces: "<unk>", "<s>", "</s>"; the 256 byte tokens "<0x00>".."<0xFF>" when vocab_size >=
// 259 (below that there is no byte fallback); the 95 printable ASCII characters; " " + each
// letter; then merges, each the concatenation of two earlier text pieces (at most 8 bytes),
// so every piece is reachable by BPE merges. All pieces are unique. Scores: 0 for the special
// and byte tokens, then -(rank) for the text pieces in order (decreasing). When vocab_size is
// small the list is cut after vocab_size pieces. Requires vocab_size >= 3.
bool synth_tokenizer(uint32_t vocab_size, uint64_t seed, const std::string& path,
                     std::string* err) {
  if (vocab_size < 3 || vocab_size > (1u << 20)) {
    *err = "synthetic tokenizer needs 3 .. 1048576 tokens (got " + std::to_string(vocab_size) + ")";
    return false;
  }
  std::vector<std::string> pieces;
  std::vector<float> scores;
  std::unordered_set<std::string> seen;
  pieces.reserve(vocab_size);
  scores.reserve(vocab_size);
  uint32_t text_rank = 0;
  std::vector<uint32_t> text_ids;  // pieces that merges are built from
  auto add = [&](const std::string& p, bool text) {
    if (pieces.size() >= vocab_size || !seen.insert(p).second) return;
    pieces.push_back(p);
    scores.push_back(text ? -(float)text_rank++ : 0.0f);
    if (text) text_ids.push_back((uint32_t)pieces.size() - 1);
  };
  add("<unk>", false);
  add("<s>", false);
  add("</s>", false);
  if (vocab_size >= 259) {
    for (int b = 0; b < 256; b++) {
      char buf[8];
      snprintf(buf, sizeof buf, "<0x%02X>", b);
      add(buf, false);
    }
  }
  for (int ch = 0x20; ch <= 0x7E; ch++) add(std::string(1, (char)ch), true);
  for (int ch = 'a'; ch <= 'z'; ch++) add(std::string(" ") + (char)ch, true);
  for (int ch = 'A'; ch <= 'Z'; ch++) add(std::string(" ") + (char)ch, true);
  Rng rng(seed * 0x2545F4914F6CDD1Dull + 17);
  uint32_t misses = 0, serial = 0;
  while (pieces.size() < vocab_size) {
    // Operands biased towards earlier (shorter) pieces, as in a real BPE vocabulary; the
    // Llama 2 tokenizer's pieces average ~5.6 bytes (these ~6).
    const uint32_t n = (uint32_t)text_ids.size();
    const std::string& a = pieces[text_ids[std::min({rng.below(n), rng.below(n), rng.below(n)})]];
    const std::string& b = pieces[text_ids[std::min({rng.below(n), rng.below(n), rng.below(n)})]];
    std::string m = a + b;
    if (m.size() > 8 || seen.count(m)) {
      if (++misses < 1000) continue;
      // Practically unreachable; keeps the loop finite whatever the vocabulary size.
      m = "~" + std::to_string(serial++);
    }
    misses = 0;
    add(m, true);
  }
  return write_tokenizer_file(path, pieces, scores, err);
}

}  // namespace llmwire
