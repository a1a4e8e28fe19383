#include "tools/calibrate.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <algorithm>
#include <cmath>
#include <thread>

#include "engine/crc32c.h"
#include "engine/mathfn.h"
#include "engine/tokenizer.h"

namespace llmwire {
namespace {

constexpr uint64_t kMaxTextBytes = 64ull << 20;
constexpr uint64_t kMinTokens = 64;
// More raw-byte pieces than this fraction: the text is not in the tokenizer's language.
constexpr double kMaxByteFallback = 0.10;

std::vector<std::string> split_documents(const std::string& text) {
  std::vector<std::string> docs;
  std::string cur;
  size_t i = 0;
  while (i <= text.size()) {
    size_t nl = text.find('\n', i);
    if (nl == std::string::npos) nl = text.size();
    const std::string line = text.substr(i, nl - i);
    if (line.find_first_not_of(" \t\r") == std::string::npos) {
      if (!cur.empty()) docs.push_back(cur);
      cur.clear();
    } else {
      if (!cur.empty()) cur += '\n';
      cur += line;
    }
    i = nl + 1;
  }
  if (!cur.empty()) docs.push_back(cur);
  return docs;
}

// Bytes that make a file binary rather than text: NUL and control characters other than
// tab, newline, carriage return and form feed; plus malformed UTF-8 sequences.
uint64_t non_text_bytes(const std::string& s) {
  uint64_t bad = 0;
  for (size_t i = 0; i < s.size();) {
    const uint8_t b = (uint8_t)s[i];
    if (b < 0x80) {
      if (b < 0x20 && b != '\t' && b != '\n' && b != '\r' && b != '\f') bad++;
      if (b == 0x7F) bad++;
      i++;
      continue;
    }
    const size_t n = b >= 0xF0 && b < 0xF5 ? 4 : b >= 0xE0 ? 3 : b >= 0xC2 && b < 0xE0 ? 2 : 0;
    bool ok = n != 0 && i + n <= s.size();
    for (size_t k = 1; ok && k < n; k++) ok = ((uint8_t)s[i + k] & 0xC0) == 0x80;
    if (!ok) {
      bad++;
      i++;
    } else {
      i += n;
    }
  }
  return bad;
}

bool is_byte_piece(const Piece& p) {
  return p.len == 6 && memcmp(p.data, "<0x", 3) == 0 && p.data[5] == '>';
}

// Runs fn(r0, r1) over [0, n) split into at most `threads` contiguous ranges.
template <typename Fn>
void parallel_ranges(uint32_t n, unsigned threads, const Fn& fn) {
  if (threads <= 1 || n < 2 * threads) {
    fn(0, n);
    return;
  }
  std::vector<std::thread> pool;
  const uint32_t per = (n + threads - 1) / threads;
  for (unsigned t = 1; t < threads; t++) {
    const uint32_t r0 = std::min(n, t * per), r1 = std::min(n, (t + 1) * per);
    if (r0 >= r1) continue;
    try {
      pool.emplace_back(fn, r0, r1);
    } catch (...) {  // no thread available: do that share here
      fn(r0, r1);
    }
  }
  fn(0, std::min(n, per));
  for (std::thread& th : pool) th.join();
}

// Dot product with eight fixed accumulators (vectorizable, and the same order everywhere).
float dot(const float* a, const float* b, uint32_t n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  uint32_t j = 0;
  for (; j + 8 <= n; j += 8) {
    for (uint32_t u = 0; u < 8; u++) acc[u] += a[j + u] * b[j + u];
  }
  for (uint32_t u = 0; j < n; j++, u++) acc[u] += a[j] * b[j];
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

// out[t * rows + r] = W[r, :] · x[t, :] for T tokens; rows split over threads.
void matmul(const float* w, uint32_t rows, uint32_t cols, const float* x, uint32_t T, float* out,
            unsigned threads) {
  parallel_ranges(rows, (uint64_t)rows * cols * T < (1u << 20) ? 1 : threads,
                  [&](uint32_t r0, uint32_t r1) {
                    for (uint32_t r = r0; r < r1; r++) {
                      const float* wr = w + (size_t)r * cols;
                      for (uint32_t t = 0; t < T; t++) {
                        out[(size_t)t * rows + r] = dot(wr, x + (size_t)t * cols, cols);
                      }
                    }
                  });
}

void rmsnorm(float* out, const float* x, const float* w, uint32_t n, float eps) {
  float ss = 0;
  for (uint32_t i = 0; i < n; i++) ss += x[i] * x[i];
  ss = ss / (float)n + eps;
  const float r = 1.0f / sqrt_f32(ss);
  for (uint32_t i = 0; i < n; i++) out[i] = w[i] * (r * x[i]);
}

// Adds the statistics of T rows of n columns to msq (and gram when non-null).
void accumulate(const float* x, uint32_t T, uint32_t n, double* msq, double* gram,
                unsigned threads) {
  for (uint32_t t = 0; t < T; t++) {
    const float* xt = x + (size_t)t * n;
    for (uint32_t j = 0; j < n; j++) msq[j] += (double)xt[j] * (double)xt[j];
  }
  if (gram == nullptr) return;
  // Upper triangle, row i over threads; every (i, k) sums over t in order.
  parallel_ranges(n, (uint64_t)n * n * T < (1u << 20) ? 1 : threads, [&](uint32_t i0, uint32_t i1) {
    std::vector<double> xi(T);
    for (uint32_t i = i0; i < i1; i++) {
      for (uint32_t t = 0; t < T; t++) xi[t] = x[(size_t)t * n + i];
      double* gi = gram + (size_t)i * n;
      for (uint32_t t = 0; t < T; t++) {
        const float* xt = x + (size_t)t * n;
        const double a = xi[t];
        for (uint32_t k = i; k < n; k++) gi[k] += a * (double)xt[k];
      }
    }
  });
}

// Adds sum_t p_v(t) x_t x_tᵀ (upper triangles) to each classifier row's block of cls_gram,
// p = softmax of the logits [T][V]; vocabulary rows split over threads, t summed in order.
void accumulate_classifier(const float* logits, const double* x, uint32_t T, uint32_t V, uint32_t d,
                           std::vector<double>* cls_gram, unsigned threads) {
  std::vector<double> p((size_t)T * V);
  for (uint32_t t = 0; t < T; t++) {
    const float* z = logits + (size_t)t * V;
    float m = z[0];
    for (uint32_t v = 1; v < V; v++) m = z[v] > m ? z[v] : m;
    double sum = 0;
    double* pt = &p[(size_t)t * V];
    for (uint32_t v = 0; v < V; v++) {
      pt[v] = (double)exp_f32(z[v] - m);
      sum += pt[v];
    }
    for (uint32_t v = 0; v < V; v++) pt[v] /= sum;
  }
  parallel_ranges(V, threads, [&](uint32_t v0, uint32_t v1) {
    for (uint32_t v = v0; v < v1; v++) {
      double* g = &(*cls_gram)[(size_t)v * d * d];
      for (uint32_t t = 0; t < T; t++) {
        const double pv = p[(size_t)t * V + v];
        if (pv < 1e-9) continue;  // a token the model all but rules out adds nothing
        const double* xt = x + (size_t)t * d;
        for (uint32_t i = 0; i < d; i++) {
          const double a = pv * xt[i];
          for (uint32_t k = i; k < d; k++) g[(size_t)i * d + k] += a * xt[k];
        }
      }
    }
  });
}

}  // namespace

bool load_calibration_text(const std::string& path, const TokenizerBlob& tok, uint32_t seq_len,
                           uint64_t max_tokens, CalibText* out, std::string* err) {
  *out = CalibText{};
  FILE* f = fopen(path.c_str(), "rb");
  if (f == nullptr) {
    *err = "cannot open calibration text " + path + ": " + strerror(errno) + " (check the path)";
    return false;
  }
  std::string text;
  char buf[65536];
  size_t n;
  bool huge = false;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
    text.append(buf, n);
    if (text.size() > kMaxTextBytes) {
      huge = true;
      break;
    }
  }
  const bool read_error = ferror(f) != 0;
  fclose(f);
  if (read_error) {
    *err = "cannot read calibration text " + path + " (is it a folder or unreadable?)";
    return false;
  }
  if (huge) {
    *err = "calibration text " + path + " is larger than " + std::to_string(kMaxTextBytes >> 20) +
           " MB; calibration needs some kilobytes to a few megabytes of text: give a smaller "
           "sample (e.g. head -c 1000000 FILE > calib.txt)";
    return false;
  }
  if (text.find_first_not_of(" \t\r\n\f") == std::string::npos) {
    *err = "calibration text " + path +
           " is empty: give a few kilobytes of text like what the model will read (e.g. "
           "stories for a TinyStories model)";
    return false;
  }
  const uint64_t bad = non_text_bytes(text);
  if (bad * 100 > text.size()) {  // a stray byte is fine; a binary file is not
    *err = "calibration text " + path + " does not look like text: " + std::to_string(bad) +
           " of its " + std::to_string(text.size()) +
           " bytes are control bytes or malformed UTF-8 (is it a binary file, e.g. a checkpoint "
           "or an image?); give a plain UTF-8 text file";
    return false;
  }
  out->text_crc = crc32c(text.data(), text.size());

  Tokenizer tk;
  const TokenizerData td = tok.view();
  if (tk.init(td) != Status::kOk) {
    *err = "the tokenizer cannot be used for calibration";
    return false;
  }
  const int32_t bos = (int32_t)td.bos_id;
  const uint32_t chunk_len = seq_len < 2 ? 2 : seq_len;
  for (const std::string& doc : split_documents(text)) {
    if (out->tokens >= max_tokens) {
      out->truncated = true;
      break;
    }
    std::vector<int32_t> toks(doc.size() + 3);
    size_t nt = 0;
    if (tk.encode(doc.data(), doc.size(), true, false, toks.data(), toks.size(), &nt) !=
        Status::kOk) {
      *err = "calibration text " + path + ": a document could not be tokenized";
      return false;
    }
    // Chunks of at most chunk_len tokens, each starting with BOS.
    size_t i = 1;
    while (i < nt && out->tokens < max_tokens) {
      std::vector<int32_t> chunk{bos};
      const uint64_t room = std::min<uint64_t>(chunk_len, max_tokens - out->tokens);
      while (i < nt && chunk.size() < room) chunk.push_back(toks[i++]);
      if (chunk.size() < 2) break;
      for (size_t k = 1; k < chunk.size(); k++) {
        if (is_byte_piece(tk.piece(chunk[k]))) out->byte_fallback_tokens++;
      }
      out->tokens += chunk.size();
      out->chunks.push_back(std::move(chunk));
    }
    if (i < nt) out->truncated = true;
  }
  if (out->tokens < kMinTokens) {
    *err = "calibration text " + path + " is too short: " + std::to_string(out->tokens) +
           " tokens; give at least " + std::to_string(kMinTokens) +
           " (a few thousand tokens, some kilobytes of text, calibrate well)";
    return false;
  }
  if ((double)out->byte_fallback_tokens > kMaxByteFallback * (double)out->tokens) {
    char pct[32];
    snprintf(pct, sizeof pct, "%.0f%%", 100.0 * out->byte_fallback_tokens / out->tokens);
    *err = "calibration text " + path + " is not in this model's vocabulary: " + pct +
           " of its tokens are raw-byte fallbacks (<0xNN>); give text in the language the "
           "model was trained on (for TinyStories models, English stories)";
    return false;
  }
  return true;
}

namespace {

// The f32 forward pass of one chunk, layer by layer over all its positions (llama2.c order).
// Matrices come from `w`, so a caller can swap one for a dequantized copy. Each linear layer's
// input is reported to `site(index, rows, T, n)`; with `logits` non-null the classifier's
// output [T][vocab] is written there.
struct ChunkForward {
  const Checkpoint& ck;
  const ModelConfig& c;
  const CalibWeights& w;
  unsigned threads;
  size_t stop = SIZE_MAX;  // the site after which run() returns (no logits then)
  std::vector<float> freq, x, xb, xb2, q, k, v, h1, h3, att;

  ChunkForward(const Checkpoint& ck_, const ModelConfig& c_, const CalibWeights& w_,
               unsigned threads_, uint32_t max_t)
      : ck(ck_), c(c_), w(w_), threads(threads_) {
    const uint32_t d = c.dim, hd = c.hidden_dim, kvd = c.kv_dim(), hs = c.head_size();
    freq.resize(hs / 2);
    const float log_theta = log_f32(10000.0f);  // RoPE: theta^(-2i/hs)
    for (uint32_t i = 0; i < hs / 2; i++) {
      freq[i] = exp_f32(-((float)(2 * i) / (float)hs) * log_theta);
    }
    x.resize((size_t)max_t * d);
    xb.resize((size_t)max_t * d);
    xb2.resize((size_t)max_t * d);
    q.resize((size_t)max_t * d);
    k.resize((size_t)max_t * kvd);
    v.resize((size_t)max_t * kvd);
    h1.resize((size_t)max_t * hd);
    h3.resize((size_t)max_t * hd);
    att.resize(max_t);
  }

  template <typename SiteFn>
  void run(const std::vector<int32_t>& ch, const SiteFn& site, float* logits) {
    const uint32_t d = c.dim, hd = c.hidden_dim, L = c.n_layers;
    const uint32_t kvd = c.kv_dim(), nh = c.n_heads, hs = c.head_size();
    const uint32_t kv_mul = c.n_heads / c.n_kv_heads;
    const float eps = 1e-5f;
    const uint32_t T = (uint32_t)ch.size();
    for (uint32_t t = 0; t < T; t++) {
      memcpy(&x[(size_t)t * d], w.tok_emb + (size_t)ch[t] * d, d * sizeof(float));
    }
    for (uint32_t l = 0; l < L; l++) {
      const CalibWeights::Layer& lw = w.layers[l];
      const size_t sbase = (size_t)l * kCalibSitesPerLayer;
      // Attention.
      for (uint32_t t = 0; t < T; t++) {
        rmsnorm(&xb[(size_t)t * d], &x[(size_t)t * d], ck.ptr(ck.rms_att + (size_t)l * d), d, eps);
      }
      site(sbase + (uint32_t)CalibSite::kAttnIn, xb.data(), T, d);
      if (sbase + (uint32_t)CalibSite::kAttnIn == stop) return;
      matmul(lw.wq, d, d, xb.data(), T, q.data(), threads);
      matmul(lw.wk, kvd, d, xb.data(), T, k.data(), threads);
      matmul(lw.wv, kvd, d, xb.data(), T, v.data(), threads);
      for (uint32_t t = 0; t < T; t++) {
        for (uint32_t i = 0; i < hs / 2; i++) {
          float sn, cs;
          sincos_f32((float)t * freq[i], &sn, &cs);
          for (uint32_t h = 0; h < nh; h++) {
            float* p = &q[(size_t)t * d + h * hs + 2 * i];
            const float a = p[0], b = p[1];
            p[0] = a * cs - b * sn;
            p[1] = a * sn + b * cs;
          }
          for (uint32_t h = 0; h < nh / kv_mul; h++) {
            float* p = &k[(size_t)t * kvd + h * hs + 2 * i];
            const float a = p[0], b = p[1];
            p[0] = a * cs - b * sn;
            p[1] = a * sn + b * cs;
          }
        }
      }
      const float inv_sqrt = 1.0f / sqrt_f32((float)hs);
      for (uint32_t t = 0; t < T; t++) {
        for (uint32_t h = 0; h < nh; h++) {
          const float* qh = &q[(size_t)t * d + h * hs];
          const uint32_t kh = h / kv_mul;
          float m = -3.0e38f;
          for (uint32_t u = 0; u <= t; u++) {
            att[u] = dot(qh, &k[(size_t)u * kvd + kh * hs], hs) * inv_sqrt;
            m = att[u] > m ? att[u] : m;
          }
          float sum = 0;
          for (uint32_t u = 0; u <= t; u++) {
            att[u] = exp_f32(att[u] - m);
            sum += att[u];
          }
          float* o = &xb2[(size_t)t * d + h * hs];
          for (uint32_t i = 0; i < hs; i++) o[i] = 0;
          for (uint32_t u = 0; u <= t; u++) {
            const float a = att[u] / sum;
            const float* vu = &v[(size_t)u * kvd + kh * hs];
            for (uint32_t i = 0; i < hs; i++) o[i] += a * vu[i];
          }
        }
      }
      site(sbase + (uint32_t)CalibSite::kAttnOut, xb2.data(), T, d);
      if (sbase + (uint32_t)CalibSite::kAttnOut == stop) return;
      matmul(lw.wo, d, d, xb2.data(), T, xb.data(), threads);
      for (size_t i = 0; i < (size_t)T * d; i++) x[i] += xb[i];
      // FFN.
      for (uint32_t t = 0; t < T; t++) {
        rmsnorm(&xb[(size_t)t * d], &x[(size_t)t * d], ck.ptr(ck.rms_ffn + (size_t)l * d), d, eps);
      }
      site(sbase + (uint32_t)CalibSite::kFfnIn, xb.data(), T, d);
      if (sbase + (uint32_t)CalibSite::kFfnIn == stop) return;
      matmul(lw.w1, hd, d, xb.data(), T, h1.data(), threads);
      matmul(lw.w3, hd, d, xb.data(), T, h3.data(), threads);
      for (size_t i = 0; i < (size_t)T * hd; i++) {
        const float a = h1[i];
        h1[i] = (a * (1.0f / (1.0f + exp_f32(-a)))) * h3[i];
      }
      site(sbase + (uint32_t)CalibSite::kFfnHidden, h1.data(), T, hd);
      if (sbase + (uint32_t)CalibSite::kFfnHidden == stop) return;
      matmul(lw.w2, d, hd, h1.data(), T, xb.data(), threads);
      for (size_t i = 0; i < (size_t)T * d; i++) x[i] += xb[i];
    }
    for (uint32_t t = 0; t < T; t++) {
      rmsnorm(&xb[(size_t)t * d], &x[(size_t)t * d], ck.ptr(ck.rms_final), d, eps);
    }
    site((size_t)L * kCalibSitesPerLayer, xb.data(), T, d);
    if (logits) matmul(w.wcls, c.vocab_size, d, xb.data(), T, logits, threads);
  }
};

bool check_chunks(const ModelConfig& c, const CalibText& text, std::string* err) {
  for (const std::vector<int32_t>& ch : text.chunks) {
    for (int32_t t : ch) {
      if (t < 0 || (uint32_t)t >= c.vocab_size) {
        *err = "calibration token id out of the vocabulary";
        return false;
      }
    }
    if (ch.size() > c.seq_len) {
      *err = "calibration chunk longer than the model's context";
      return false;
    }
  }
  return true;
}

unsigned thread_count(unsigned threads) {
  if (threads == 0) threads = std::thread::hardware_concurrency();
  if (threads == 0) threads = 1;
  return threads > 32 ? 32 : threads;
}

// log-softmax of v[0..n) in double.
void log_softmax(const float* v, uint32_t n, double* out) {
  double m = v[0];
  for (uint32_t i = 1; i < n; i++) m = v[i] > m ? v[i] : m;
  double s = 0;
  for (uint32_t i = 0; i < n; i++) s += std::exp((double)v[i] - m);
  const double lse = m + std::log(s);
  for (uint32_t i = 0; i < n; i++) out[i] = (double)v[i] - lse;
}

}  // namespace

CalibWeights CalibWeights::of(const Checkpoint& ck) {
  const ModelConfig& c = ck.config;
  const uint32_t d = c.dim, hd = c.hidden_dim, kvd = c.kv_dim();
  CalibWeights w;
  w.tok_emb = ck.ptr(ck.tok_emb);
  w.wcls = ck.ptr(ck.wcls);
  w.layers.resize(c.n_layers);
  for (uint32_t l = 0; l < c.n_layers; l++) {
    CalibWeights::Layer& lw = w.layers[l];
    lw.wq = ck.ptr(ck.wq + (size_t)l * d * d);
    lw.wk = ck.ptr(ck.wk + (size_t)l * kvd * d);
    lw.wv = ck.ptr(ck.wv + (size_t)l * kvd * d);
    lw.wo = ck.ptr(ck.wo + (size_t)l * d * d);
    lw.w1 = ck.ptr(ck.w1 + (size_t)l * hd * d);
    lw.w2 = ck.ptr(ck.w2 + (size_t)l * d * hd);
    lw.w3 = ck.ptr(ck.w3 + (size_t)l * hd * d);
  }
  return w;
}

bool collect_calibration(const Checkpoint& ck, const ModelConfig& c, const CalibText& text,
                         bool gram, unsigned threads, const CalibProgressFn& progress,
                         CalibStats* out, std::string* err) {
  threads = thread_count(threads);
  const uint32_t d = c.dim, hd = c.hidden_dim, L = c.n_layers;
  if (!check_chunks(c, text, err)) return false;
  CalibStats st;
  st.layers = L;
  const uint32_t sites = L * kCalibSitesPerLayer + 1;
  st.msq.resize(sites);
  if (gram) st.gram.resize(sites);
  for (uint32_t s = 0; s < sites; s++) {
    const uint32_t n =
        s < L * kCalibSitesPerLayer && s % kCalibSitesPerLayer == (uint32_t)CalibSite::kFfnHidden
            ? hd
            : d;
    st.msq[s].assign(n, 0.0);
    if (gram) st.gram[s].assign((size_t)n * n, 0.0);
  }
  uint32_t max_t = 0;
  for (const std::vector<int32_t>& ch : text.chunks) max_t = std::max<uint32_t>(max_t, ch.size());
  const CalibWeights w = CalibWeights::of(ck);
  ChunkForward fw(ck, c, w, threads, max_t);
  const uint32_t V = c.vocab_size;
  const bool cls = gram && (uint64_t)V * d * d <= kMaxClassifierGram;
  std::vector<float> logits;
  std::vector<double> final_x;
  if (cls) {
    st.cls_gram.assign((size_t)V * d * d, 0.0);
    logits.resize((size_t)max_t * V);
    final_x.resize((size_t)max_t * d);
  }
  uint64_t done = 0;
  for (const std::vector<int32_t>& ch : text.chunks) {
    const uint32_t T = (uint32_t)ch.size();
    fw.run(
        ch,
        [&](size_t i, const float* a, uint32_t rows, uint32_t n) {
          accumulate(a, rows, n, st.msq[i].data(), gram ? st.gram[i].data() : nullptr, threads);
          if (cls && i == (size_t)L * kCalibSitesPerLayer) {
            for (size_t k = 0; k < (size_t)rows * n; k++) final_x[k] = a[k];
          }
        },
        cls ? logits.data() : nullptr);
    if (cls) accumulate_classifier(logits.data(), final_x.data(), T, V, d, &st.cls_gram, threads);
    done += T;
    st.tokens = done;
    if (progress) progress(done, text.tokens);
  }
  if (done == 0) {
    *err = "no calibration tokens";
    return false;
  }
  const double inv = 1.0 / (double)done;
  for (uint32_t s = 0; s < sites; s++) {
    for (double& m : st.msq[s]) m *= inv;
    if (gram) {
      std::vector<double>& g = st.gram[s];
      const size_t n = st.msq[s].size();
      for (size_t i = 0; i < n; i++) {
        for (size_t j = i; j < n; j++) {
          g[i * n + j] *= inv;
          g[j * n + i] = g[i * n + j];
        }
      }
    }
  }
  for (uint32_t v = 0; v < (cls ? V : 0u); v++) {
    double* g = &st.cls_gram[(size_t)v * d * d];
    for (size_t i = 0; i < d; i++) {
      for (size_t j = i; j < d; j++) {
        g[i * d + j] *= inv;
        g[j * d + i] = g[i * d + j];
      }
    }
  }
  *out = std::move(st);
  return true;
}

bool record_sites(const Checkpoint& ck, const ModelConfig& c, const CalibText& text,
                  unsigned threads, SiteActivations* out, std::string* err) {
  threads = thread_count(threads);
  if (!check_chunks(c, text, err)) return false;
  const uint32_t sites = c.n_layers * kCalibSitesPerLayer + 1;
  uint32_t max_t = 0;
  for (const std::vector<int32_t>& ch : text.chunks) max_t = std::max<uint32_t>(max_t, ch.size());
  const CalibWeights w = CalibWeights::of(ck);
  ChunkForward fw(ck, c, w, threads, max_t);
  out->site.assign(sites, {});
  for (const std::vector<int32_t>& ch : text.chunks) {
    fw.run(
        ch,
        [&](size_t i, const float* a, uint32_t rows, uint32_t n) {
          out->site[i].insert(out->site[i].end(), a, a + (size_t)rows * n);
        },
        nullptr);
  }
  return true;
}

bool collect_site_pair(const Checkpoint& ck, const ModelConfig& c, const CalibText& text,
                       const CalibWeights& variant, size_t site, const SiteActivations& ref,
                       unsigned threads, std::vector<double>* gram, std::vector<double>* cross,
                       std::string* err) {
  threads = thread_count(threads);
  if (!check_chunks(c, text, err)) return false;
  const uint32_t L = c.n_layers;
  const uint32_t n = site < (size_t)L * kCalibSitesPerLayer &&
                             site % kCalibSitesPerLayer == (uint32_t)CalibSite::kFfnHidden
                         ? c.hidden_dim
                         : c.dim;
  uint32_t max_t = 0;
  for (const std::vector<int32_t>& ch : text.chunks) max_t = std::max<uint32_t>(max_t, ch.size());
  if (site >= ref.site.size() || ref.site[site].size() != (size_t)text.tokens * n) {
    *err = "calibration activations do not match the text";
    return false;
  }
  ChunkForward var(ck, c, variant, threads, max_t);
  var.stop = site;
  std::vector<float> xv((size_t)max_t * n);
  auto capture = [&](size_t i, const float* a, uint32_t rows, uint32_t cols) {
    if (i == site) memcpy(xv.data(), a, (size_t)rows * cols * sizeof(float));
  };
  gram->assign((size_t)n * n, 0.0);
  cross->assign((size_t)n * n, 0.0);
  uint64_t done = 0;
  for (const std::vector<int32_t>& ch : text.chunks) {
    const uint32_t T = (uint32_t)ch.size();
    var.run(ch, capture, nullptr);
    const float* xr = &ref.site[site][(size_t)done * n];
    // Rows of the moments split over threads; tokens summed in order.
    parallel_ranges(n, (uint64_t)T * n * n < (1u << 20) ? 1 : threads,
                    [&](uint32_t i0, uint32_t i1) {
                      for (uint32_t i = i0; i < i1; i++) {
                        double* gi = &(*gram)[(size_t)i * n];
                        double* ci = &(*cross)[(size_t)i * n];
                        for (uint32_t t = 0; t < T; t++) {
                          const float* v = &xv[(size_t)t * n];
                          const double a = (double)v[i], b = (double)xr[(size_t)t * n + i];
                          for (uint32_t k = 0; k < n; k++) {
                            gi[k] += a * (double)v[k];
                            ci[k] += b * (double)v[k];
                          }
                        }
                      }
                    });
    done += T;
  }
  const double inv = 1.0 / (double)(done ? done : 1);
  for (double& v : *gram) v *= inv;
  for (double& v : *cross) v *= inv;
  return true;
}

bool measure_kl(const Checkpoint& ck, const ModelConfig& c, const CalibText& text,
                const std::vector<CalibWeights>& variants, unsigned threads,
                const CalibProgressFn& progress, std::vector<double>* kl, std::string* err) {
  threads = thread_count(threads);
  if (!check_chunks(c, text, err)) return false;
  const uint32_t V = c.vocab_size;
  uint32_t max_t = 0;
  for (const std::vector<int32_t>& ch : text.chunks) max_t = std::max<uint32_t>(max_t, ch.size());
  const CalibWeights ref_w = CalibWeights::of(ck);
  ChunkForward ref(ck, c, ref_w, threads, max_t);
  std::vector<float> logits((size_t)max_t * V);
  std::vector<double> ref_lp((size_t)max_t * V), lp(V);
  kl->assign(variants.size(), 0.0);
  auto no_site = [](size_t, const float*, uint32_t, uint32_t) {};
  uint64_t positions = 0, done = 0;
  const uint64_t total = (uint64_t)text.tokens * variants.size();
  for (const std::vector<int32_t>& ch : text.chunks) {
    const uint32_t T = (uint32_t)ch.size();
    ref.run(ch, no_site, logits.data());
    for (uint32_t t = 0; t < T; t++) {
      log_softmax(&logits[(size_t)t * V], V, &ref_lp[(size_t)t * V]);
    }
    for (size_t vi = 0; vi < variants.size(); vi++) {
      ChunkForward fw(ck, c, variants[vi], threads, T);
      fw.run(ch, no_site, logits.data());
      double sum = 0;
      for (uint32_t t = 0; t < T; t++) {
        log_softmax(&logits[(size_t)t * V], V, lp.data());
        const double* r = &ref_lp[(size_t)t * V];
        for (uint32_t i = 0; i < V; i++) sum += std::exp(r[i]) * (r[i] - lp[i]);
      }
      (*kl)[vi] += sum;
      done += T;
      if (progress) progress(done, total);
    }
    positions += T;
  }
  for (double& v : *kl) v /= (double)(positions ? positions : 1);
  return true;
}

}  // namespace llmwire
