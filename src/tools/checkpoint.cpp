// llama2.c legacy checkpoint reader/writer (see checkpoint.h and ../shared/models/SOURCES.md).
#include "tools/checkpoint.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/image_format.h"
#include "platform/host/output_file.h"

namespace llmwire {
namespace {

constexpr size_t kHeaderBytes = 7 * 4;
constexpr int64_t kMaxDim = 65536;
constexpr int64_t kMaxBig = 1 << 20;

int32_t load_i32(const uint8_t* p) {
  uint32_t u =
      (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
  int32_t v;
  memcpy(&v, &u, 4);
  return v;
}

struct Layout {
  uint64_t tok_emb, rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3, rms_final, freq, wcls, total;
};

// Offsets (in floats) of every tensor; total floats after the header.
Layout layout_of(const ModelConfig& c) {
  const uint64_t d = c.dim, h = c.hidden_dim, L = c.n_layers, V = c.vocab_size;
  const uint64_t kv = c.kv_dim(), hs = c.head_size(), seq = c.seq_len;
  Layout l{};
  uint64_t o = 0;
  l.tok_emb = o;
  o += V * d;
  l.rms_att = o;
  o += L * d;
  l.wq = o;
  o += L * d * d;
  l.wk = o;
  o += L * d * kv;
  l.wv = o;
  o += L * d * kv;
  l.wo = o;
  o += L * d * d;
  l.rms_ffn = o;
  o += L * d;
  l.w1 = o;
  o += L * h * d;
  l.w2 = o;
  o += L * d * h;
  l.w3 = o;
  o += L * h * d;
  l.rms_final = o;
  o += d;
  l.freq = o;
  o += seq * hs;  // freq_cis_real and freq_cis_imag, seq * head_size / 2 floats each
  if (c.shared_classifier) {
    l.wcls = l.tok_emb;
  } else {
    l.wcls = o;
    o += V * d;
  }
  l.total = o;
  return l;
}

std::string dims_text(const int32_t h[7]) {
  char buf[160];
  snprintf(buf, sizeof buf, "dim %d, hidden %d, layers %d, heads %d, kv_heads %d, vocab %d, seq %d",
           h[0], h[1], h[2], h[3], h[4], h[5], h[6]);
  return buf;
}

// Checks the raw header; on failure *why says what is wrong.
bool check_header(const int32_t h[7], std::string* why) {
  static const char* names[7] = {"dim",        "hidden_dim", "n_layers", "n_heads",
                                 "n_kv_heads", "vocab_size", "seq_len"};
  const int64_t limits[7] = {kMaxDim, kMaxBig, kMaxLayers, kMaxDim, kMaxDim, kMaxBig, kMaxBig};
  for (int i = 0; i < 7; i++) {
    const int64_t v = i == 5 ? (h[i] < 0 ? -(int64_t)h[i] : h[i]) : h[i];
    if (v <= 0) {
      *why = std::string(names[i]) + " is " + std::to_string(h[i]) + " (must be positive)";
      return false;
    }
    if (v > limits[i]) {
      *why = std::string(names[i]) + " is " + std::to_string(v) + " (more than the limit " +
             std::to_string(limits[i]) + ")";
      return false;
    }
  }
  if (h[0] % h[3] != 0) {
    *why = "dim " + std::to_string(h[0]) + " is not a multiple of n_heads " + std::to_string(h[3]);
    return false;
  }
  if ((h[0] / h[3]) % 2 != 0) {
    *why = "head size " + std::to_string(h[0] / h[3]) + " is odd (RoPE rotates pairs)";
    return false;
  }
  if (h[4] > h[3] || h[3] % h[4] != 0) {
    *why = "n_heads " + std::to_string(h[3]) + " is not a multiple of n_kv_heads " +
           std::to_string(h[4]);
    return false;
  }
  return true;
}

// A llama2.c tokenizer.bin starts with int32 max_token_length, then float score, int32 len,
// len bytes per token. Looks at the first few entries.
bool looks_like_tokenizer(const uint8_t* p, size_t n, int32_t* max_len) {
  if (n < 4) return false;
  const int32_t ml = load_i32(p);
  if (ml <= 0 || ml > 1024) return false;
  size_t off = 4;
  int seen = 0;
  while (seen < 3 && off + 8 <= n) {
    const int32_t len = load_i32(p + off + 4);
    if (len <= 0 || len > ml || off + 8 + (size_t)len > n) return false;
    off += 8 + (size_t)len;
    seen++;
  }
  if (seen == 0) return false;
  *max_len = ml;
  return true;
}

// Names a file format other than a legacy checkpoint when the first bytes say so.
std::string other_format(const uint8_t* p, size_t n) {
  if (n >= 8 && memcmp(p, "LLMWIMG", 8) == 0) {
    return "it is an llmwire image (magic LLMWIMG), not a llama2.c checkpoint. convert takes the "
           "original llama2.c .bin checkpoint; the image is already converted (try 'llmwire "
           "inspect')";
  }
  if (n >= 8 && load_i32(p) == 0x616b3432) {
    return "it is a llama2.c export of format version " + std::to_string(load_i32(p + 4)) +
           " (magic \"ak42\"); llmwire reads the legacy format: re-export with llama2.c "
           "export.py --version 0, or use the published stories*.bin files";
  }
  if (n >= 4 && memcmp(p, "GGUF", 4) == 0) {
    return "it is a GGUF file; llmwire reads llama2.c legacy checkpoints (stories*.bin)";
  }
  int32_t ml = 0;
  if (looks_like_tokenizer(p, n, &ml)) {
    return "it looks like a llama2.c tokenizer.bin (max token length " + std::to_string(ml) +
           "), not a checkpoint: pass the checkpoint first and the tokenizer second";
  }
  return "";
}

bool read_all(FILE* f, void* dst, size_t n) {
  uint8_t* p = static_cast<uint8_t*>(dst);
  while (n > 0) {
    const size_t chunk = n < ((size_t)1 << 26) ? n : ((size_t)1 << 26);
    const size_t got = fread(p, 1, chunk, f);
    if (got != chunk) return false;
    p += got;
    n -= got;
  }
  return true;
}

}  // namespace

size_t checkpoint_bytes(const ModelConfig& c) {
  return kHeaderBytes + (size_t)layout_of(c).total * 4u;
}

bool load_checkpoint(const std::string& path, Checkpoint* out, std::string* err) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    *err = "cannot open checkpoint " + path + ": " + strerror(errno) + " (check the path)";
    return false;
  }
  if (!S_ISREG(st.st_mode)) {
    *err = "checkpoint " + path + " is not a regular file";
    return false;
  }
  const uint64_t actual = (uint64_t)st.st_size;
  FILE* f = fopen(path.c_str(), "rb");
  if (f == nullptr) {
    *err = "cannot open checkpoint " + path + ": " + strerror(errno);
    return false;
  }
  uint8_t head[64] = {};
  const size_t got = fread(head, 1, sizeof head, f);
  if (got < kHeaderBytes) {
    fclose(f);
    *err = "checkpoint " + path + " is " + std::to_string(actual) +
           " bytes, shorter than the 28-byte llama2.c header: the file is empty or truncated; "
           "download it again";
    return false;
  }
  const std::string other = other_format(head, got);
  int32_t h[7];
  for (int i = 0; i < 7; i++) h[i] = load_i32(head + 4 * i);
  std::string why;
  if (!check_header(h, &why)) {
    fclose(f);
    *err = path + ": " +
           (other.empty() ? "bad llama2.c checkpoint header: " + why + " (" + dims_text(h) +
                                "). Is this a llama2.c legacy checkpoint "
                                "(stories*.bin)? Re-download or re-export it"
                          : other);
    return false;
  }
  ModelConfig c;
  c.dim = (uint32_t)h[0];
  c.hidden_dim = (uint32_t)h[1];
  c.n_layers = (uint32_t)h[2];
  c.n_heads = (uint32_t)h[3];
  c.n_kv_heads = (uint32_t)h[4];
  c.shared_classifier = h[5] > 0;
  c.vocab_size = (uint32_t)(h[5] < 0 ? -(int64_t)h[5] : h[5]);
  c.seq_len = (uint32_t)h[6];
  const Layout l = layout_of(c);
  const uint64_t expected = kHeaderBytes + l.total * 4u;
  if (actual != expected) {
    fclose(f);
    std::string what = path + ": the header (" + dims_text(h) + ") implies " +
                       std::to_string(expected) + " bytes but the file has " +
                       std::to_string(actual) + " bytes";
    if (!other.empty()) {
      what += ": " + other;
    } else if (actual < expected) {
      what += " (" + std::to_string(expected - actual) +
              " bytes missing): the file looks truncated, e.g. an interrupted download; download "
              "it again";
    } else {
      what += " (" + std::to_string(actual - expected) +
              " extra bytes): not a llama2.c legacy checkpoint of this shape, or a different "
              "format; llmwire reads the legacy stories*.bin format (export.py --version 0)";
    }
    *err = what;
    return false;
  }
  Checkpoint ck;
  ck.config = c;
  ck.data.resize((size_t)l.total);
  if (fseek(f, (long)kHeaderBytes, SEEK_SET) != 0 ||
      !read_all(f, ck.data.data(), (size_t)l.total * 4u)) {
    const bool eof = feof(f) != 0;
    fclose(f);
    *err = "cannot read checkpoint " + path + ": " +
           (eof ? std::string("unexpected end of file (did it change while reading?)")
                : std::string(strerror(errno)));
    return false;
  }
  fclose(f);
  // The file is little-endian float32; convert in place on a big-endian host.
  const uint16_t probe = 1;
  if (*reinterpret_cast<const uint8_t*>(&probe) != 1) {
    for (float& v : ck.data) {
      uint8_t b[4];
      memcpy(b, &v, 4);
      const uint32_t u =
          (uint32_t)b[0] | ((uint32_t)b[1] << 8) | ((uint32_t)b[2] << 16) | ((uint32_t)b[3] << 24);
      memcpy(&v, &u, 4);
    }
  }
  ck.tok_emb = l.tok_emb;
  ck.rms_att = l.rms_att;
  ck.wq = l.wq;
  ck.wk = l.wk;
  ck.wv = l.wv;
  ck.wo = l.wo;
  ck.rms_ffn = l.rms_ffn;
  ck.w1 = l.w1;
  ck.w2 = l.w2;
  ck.w3 = l.w3;
  ck.rms_final = l.rms_final;
  ck.wcls = l.wcls;
  *out = std::move(ck);
  return true;
}

bool write_checkpoint(const std::string& path, const ModelConfig& c, const std::vector<float>& data,
                      std::string* err) {
  int32_t h[7] = {(int32_t)c.dim,     (int32_t)c.hidden_dim, (int32_t)c.n_layers,
                  (int32_t)c.n_heads, (int32_t)c.n_kv_heads, (int32_t)c.vocab_size,
                  (int32_t)c.seq_len};
  if (c.dim > (uint32_t)kMaxDim || c.hidden_dim > (uint32_t)kMaxBig || c.n_layers > kMaxLayers ||
      c.n_heads > (uint32_t)kMaxDim || c.n_kv_heads > (uint32_t)kMaxDim ||
      c.vocab_size > (uint32_t)kMaxBig || c.seq_len > (uint32_t)kMaxBig) {
    *err = "model shape out of range (dim <= 65536, layers <= 64, hidden/vocab/seq <= 1048576)";
    return false;
  }
  if (!c.shared_classifier) h[5] = -h[5];
  std::string why;
  if (!check_header(h, &why)) {
    *err = "cannot write checkpoint: " + why;
    return false;
  }
  const Layout l = layout_of(c);
  if ((uint64_t)data.size() != l.total) {
    *err = "cannot write checkpoint: " + std::to_string(data.size()) +
           " floats given, the shape needs " + std::to_string(l.total);
    return false;
  }
  OutputFile f;
  if (!f.open(path, {}, err)) return false;
  uint8_t hb[kHeaderBytes];
  for (int i = 0; i < 7; i++) {
    uint32_t u;
    memcpy(&u, &h[i], 4);
    for (int b = 0; b < 4; b++) hb[4 * i + b] = (uint8_t)(u >> (8 * b));
  }
  f.write(hb, sizeof hb);
  // Little-endian floats, written in chunks.
  std::vector<uint8_t> buf;
  const size_t chunk = 1 << 20;
  for (size_t i = 0; i < data.size(); i += chunk) {
    const size_t n = data.size() - i < chunk ? data.size() - i : chunk;
    buf.resize(n * 4);
    for (size_t j = 0; j < n; j++) {
      uint32_t u;
      memcpy(&u, &data[i + j], 4);
      for (int b = 0; b < 4; b++) buf[4 * j + b] = (uint8_t)(u >> (8 * b));
    }
    f.write(buf.data(), buf.size());
  }
  return f.commit(err);
}

}  // namespace llmwire
