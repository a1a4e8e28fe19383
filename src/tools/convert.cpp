// llama2.c checkpoint + tokenizer.bin -> one whole-model llmwire image (stage 0 of 1).
//
// Tensor table order (the order the bytes are laid out in): tokenizer scores, offsets, bytes,
// sorted ids; token embedding; per layer rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3;
// rms_final; classifier (only when not shared).
// 1-D arrays (norm weights and the tokenizer arrays) are stored as one row: rows = 1,
// cols = N, row_stride = N * element size, dtype F32 / U32 / U8.
#include "tools/convert.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <algorithm>
#include <cmath>

#include "engine/fp16.h"
#include "engine/image_header.h"
#include "engine/tokenizer.h"
#include "platform/host/output_file.h"
#include "tools/calibrate.h"
#include "tools/checkpoint.h"
#include "tools/image_writer.h"
#include "tools/planner.h"
#include "tools/quantize.h"
#include "tools/tokenizer_file.h"

namespace llmwire {
namespace {

DType matrix_dtype_of(WeightType w) {
  switch (w) {
    case WeightType::kQ8:
      return DType::kQ8;
    case WeightType::kQ4:
      return DType::kQ4;
    case WeightType::kF32:
      break;
  }
  return DType::kF32;
}

std::string file_stem(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  const size_t dot = base.find_last_of('.');
  if (dot != std::string::npos && dot > 0) base = base.substr(0, dot);
  return base;
}

std::vector<uint8_t> le_bytes(const std::vector<uint32_t>& v) {
  std::vector<uint8_t> out(v.size() * 4);
  for (size_t i = 0; i < v.size(); i++) store_u32(out.data() + 4 * i, v[i]);
  return out;
}

// First non-finite value in data[off, off + n), or -1.
int64_t first_non_finite(const std::vector<float>& data, size_t off, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (!std::isfinite(data[off + i])) return (int64_t)i;
  }
  return -1;
}

uint64_t align_up(uint64_t v, uint64_t a) {
  return (v + a - 1) / a * a;
}

// Per-column importance from calibration mean squares: msq + kFloor * mean(msq), so a column
// the calibration text never excited still counts a little (the text is a sample).
constexpr double kImportanceFloor = 0.01;
// GPTQ dampening: fraction of the mean diagonal added to the Gram matrix (for a shared
// embedding, much more: its error also reaches the residual stream directly).
constexpr double kGptqDamp = 0.01, kGptqEmbeddingDamp = 0.3;
// A shared embedding quantized with per-row classifier metrics (small models): the dampening
// relative to each row's own metric.
constexpr double kClassifierRowEmbeddingDamp = 0.1;
// Mixed precision: KL measured over this many calibration tokens per matrix, when the whole
// measurement costs at most kMaxSensitivityMacs multiply-adds (small models).
constexpr uint64_t kSensitivityTokens = 2048;
constexpr double kMaxSensitivityMacs = 5e10;
// Sequential compensation when its forward passes cost at most this many multiply-adds and
// the f32 model's activations at every site take at most this many bytes (small models).
constexpr double kMaxSequentialMacs = 5e10, kMaxSequentialBytes = 512e6;
// Sequential compensation's λ, relative to the mean diagonal of G̃ (chosen on held-out
// halves of the calibration text: docs/QUANTIZATION.md).
constexpr double kSequentialDamp = 0.03;

std::vector<double> importance_from(const std::vector<double>& msq) {
  double mean = 0;
  for (double v : msq) mean += v;
  mean /= (double)(msq.empty() ? 1 : msq.size());
  std::vector<double> imp(msq.size());
  for (size_t j = 0; j < msq.size(); j++) imp[j] = msq[j] + kImportanceFloor * mean;
  return imp;
}

// Sum over rows and columns of importance[j] * (w - dequantized)^2 of an encoded matrix.
double weighted_error(const float* w, uint32_t rows, uint32_t cols, DType dt, uint32_t group,
                      const uint8_t* bytes, const double* importance) {
  const uint32_t stride = row_stride_bytes(dt, cols, group);
  std::vector<float> deq(cols);
  double e = 0;
  for (uint32_t r = 0; r < rows; r++) {
    decode_row(bytes + (size_t)r * stride, cols, dt, group, deq.data());
    const float* wr = w + (size_t)r * cols;
    for (uint32_t j = 0; j < cols; j++) {
      const double d = (double)wr[j] - (double)deq[j];
      e += (importance ? importance[j] : 1.0) * d * d;
    }
  }
  return e;
}

}  // namespace

bool convert_checkpoint(const ConvertOptions& opts, ConvertReport* report,
                        const ProgressFn& progress, std::string* err) {
  const bool quantized = opts.quant != WeightType::kF32;
  if ((uint32_t)opts.quant > (uint32_t)WeightType::kQ4) {
    *err = "unknown weight type (use f32, q8 or q4)";
    return false;
  }
  if ((uint32_t)opts.kv > (uint32_t)KvType::kI8) {
    *err = "unknown KV cache type (use f32, f16 or i8)";
    return false;
  }
  if (quantized && (opts.group < 8 || opts.group > 256 || opts.group % 8 != 0)) {
    *err = "group size " + std::to_string(opts.group) +
           " is not supported: use a multiple of 8 from 8 to 256 (32 is the default)";
    return false;
  }
  if (opts.output_path.empty()) {
    *err = "no output path given";
    return false;
  }

  {
    // Fail before the (possibly long) conversion when the output cannot be created, is not a
    // regular file, or is one of the inputs (the rename would destroy it).
    OutputFile probe;
    if (!probe.open(opts.output_path, {opts.checkpoint_path, opts.tokenizer_path}, err)) {
      return false;
    }
  }

  Checkpoint ck;
  if (!load_checkpoint(opts.checkpoint_path, &ck, err)) return false;
  ModelConfig c = ck.config;
  if (c.vocab_size < 3) {
    *err = opts.checkpoint_path + ": vocab_size " + std::to_string(c.vocab_size) +
           " has no room for <unk>, <s> (BOS, id 1) and </s> (EOS, id 2)";
    return false;
  }
  if (opts.seq_len > c.seq_len) {
    *err = "--seq " + std::to_string(opts.seq_len) + " is longer than the " +
           std::to_string(c.seq_len) + " tokens the model was trained for; use at most " +
           std::to_string(c.seq_len) + " (a shorter context saves KV cache RAM)";
    return false;
  }
  if (opts.seq_len > 0) c.seq_len = opts.seq_len;

  TokenizerBlob tok;
  if (!load_tokenizer_file(opts.tokenizer_path, c.vocab_size, &tok, err)) return false;
  if (tok.max_token_len == 0 || tok.max_token_len > Tokenizer::kMaxTokenLen ||
      tok.scores.size() != c.vocab_size || tok.offsets.size() != (size_t)c.vocab_size + 1 ||
      tok.sorted.size() != c.vocab_size || tok.bytes.empty()) {
    *err = opts.tokenizer_path + ": tokenizer pieces are empty or longer than " +
           std::to_string(Tokenizer::kMaxTokenLen) + " bytes; is it the tokenizer of this model?";
    return false;
  }

  const uint32_t d = c.dim, hd = c.hidden_dim, L = c.n_layers, V = c.vocab_size;
  const uint32_t kv = c.kv_dim();
  struct Mat {
    TensorKind kind;
    uint32_t layer;
    size_t off;  // into ck.data
    uint32_t rows, cols;
    const char* name;
  };
  // Every tensor to write, in table order (after the tokenizer).
  std::vector<Mat> mats;
  mats.push_back({TensorKind::kTokEmbedding, kNoLayer, ck.tok_emb, V, d, "token embedding"});
  for (uint32_t l = 0; l < L; l++) {
    const size_t ld = (size_t)l * d, ldd = (size_t)l * d * d, lkd = (size_t)l * kv * d,
                 lhd = (size_t)l * hd * d;
    mats.push_back({TensorKind::kRmsAtt, l, ck.rms_att + ld, 1, d, "rms_att"});
    mats.push_back({TensorKind::kWq, l, ck.wq + ldd, d, d, "wq"});
    mats.push_back({TensorKind::kWk, l, ck.wk + lkd, kv, d, "wk"});
    mats.push_back({TensorKind::kWv, l, ck.wv + lkd, kv, d, "wv"});
    mats.push_back({TensorKind::kWo, l, ck.wo + ldd, d, d, "wo"});
    mats.push_back({TensorKind::kRmsFfn, l, ck.rms_ffn + ld, 1, d, "rms_ffn"});
    mats.push_back({TensorKind::kW1, l, ck.w1 + lhd, hd, d, "w1"});
    mats.push_back({TensorKind::kW2, l, ck.w2 + lhd, d, hd, "w2"});
    mats.push_back({TensorKind::kW3, l, ck.w3 + lhd, hd, d, "w3"});
  }
  mats.push_back({TensorKind::kRmsFinal, kNoLayer, ck.rms_final, 1, d, "rms_final"});
  if (!c.shared_classifier) {
    mats.push_back({TensorKind::kClassifier, kNoLayer, ck.wcls, V, d, "classifier"});
  }
  uint64_t total = 0;
  for (const Mat& m : mats) {
    const size_t n = (size_t)m.rows * m.cols;
    const int64_t bad = first_non_finite(ck.data, m.off, n);
    if (bad >= 0) {
      char where[160];
      snprintf(where, sizeof where, "%s%s%s row %u col %u", m.name,
               m.layer == kNoLayer ? "" : " of layer ",
               m.layer == kNoLayer ? "" : std::to_string(m.layer).c_str(), (uint32_t)(bad / m.cols),
               (uint32_t)(bad % m.cols));
      *err = opts.checkpoint_path + ": non-finite weight (NaN or Inf) in " + where +
             ": the checkpoint is corrupt or the training diverged; use a good checkpoint";
      return false;
    }
    total += n;
  }

  // Calibration statistics (issue 10).
  const bool calibrated = !opts.calib_path.empty();
  const bool fit = !opts.fit_board.empty();
  if (!calibrated && (opts.error_compensation || opts.budget_bytes || fit)) {
    *err = std::string(opts.error_compensation ? "--gptq"
                       : opts.budget_bytes     ? "--budget"
                                               : "--fit") +
           " needs calibration statistics: add --calib TEXT";
    return false;
  }
  BoardProfile board;
  if (fit) {
    if (opts.budget_bytes) {
      *err = "--budget and --fit both set the size limit: give one of them";
      return false;
    }
    if (!find_profile(opts.fit_board, &board)) {
      std::string names;
      for (const BoardProfile& b : board_profiles()) names += (names.empty() ? "" : ", ") + b.name;
      *err = "--fit: unknown board profile '" + opts.fit_board + "'; known profiles: " + names +
             " (llmwire plan --help)";
      return false;
    }
    if (opts.fit_boards == 0) {
      *err = "--boards must be at least 1";
      return false;
    }
  }
  if (calibrated && !quantized) {
    *err = "--calib applies to quantized images: use --quant q4 or q8 (f32 is exact)";
    return false;
  }
  if ((opts.budget_bytes || fit) && opts.quant != WeightType::kQ4) {
    *err = std::string(fit ? "--fit" : "--budget") +
           " chooses Q8 for some of a Q4 image's matrices: use --quant q4";
    return false;
  }
  CalibStats stats;
  CalibReport calib;
  CalibText text;
  if (calibrated) {
    if (!load_calibration_text(opts.calib_path, tok, c.seq_len, opts.calib_max_tokens, &text,
                               err)) {
      return false;
    }
    auto cal_progress = [&](uint64_t done, uint64_t all) {
      if (progress) progress(done, all, "calibration");
    };
    if (!collect_calibration(ck, c, text, opts.error_compensation, opts.threads, cal_progress,
                             &stats, err)) {
      return false;
    }
    calib.used = true;
    calib.tokens = text.tokens;
    calib.chunks = text.chunks.size();
    calib.byte_fallback_tokens = text.byte_fallback_tokens;
    calib.truncated = text.truncated;
    calib.text_crc = text.text_crc;
  }

  ImageInfo info;
  info.config = c;
  info.weight_type = opts.quant;
  info.group_size = quantized ? opts.group : 0;
  info.kv_type = opts.kv;
  info.stage_index = 0;
  info.stage_count = 1;
  info.layer_begin = 0;
  info.layer_end = L;
  info.flags = kFlagHasTokenizer | kFlagHasEmbedding | kFlagHasClassifier |
               (c.shared_classifier ? (uint32_t)kFlagSharedClassifier : 0u);
  info.norm_eps = 1e-5f;
  info.rope_theta = 10000.0f;
  info.tok_max_len = tok.max_token_len;
  info.bos_id = 1;
  info.eos_id = 2;
  const std::string name =
      opts.model_name.empty() ? file_stem(opts.checkpoint_path) : opts.model_name;
  strncpy(info.model_name, name.c_str(), sizeof(info.model_name) - 1);
  info.model_name[sizeof(info.model_name) - 1] = 0;

  ImageWriter w(info);
  if (progress) progress(0, total, "tokenizer");
  // Tokenizer arrays as little-endian bytes.
  {
    std::vector<uint32_t> score_bits(V);
    for (uint32_t i = 0; i < V; i++) score_bits[i] = bits_from_f32(tok.scores[i]);
    const std::vector<uint8_t> scores = le_bytes(score_bits), offsets = le_bytes(tok.offsets),
                               sorted = le_bytes(tok.sorted);
    w.add_raw(TensorKind::kTokScores, kNoLayer, DType::kF32, 1, V, V * 4, scores.data());
    w.add_raw(TensorKind::kTokOffsets, kNoLayer, DType::kU32, 1, V + 1, (V + 1) * 4,
              offsets.data());
    const uint32_t nb = (uint32_t)tok.bytes.size();
    w.add_raw(TensorKind::kTokBytes, kNoLayer, DType::kU8, 1, nb, nb, tok.bytes.data());
    if (V <= 65536) {  // u16 ids: 64 KB less flash for a 32000-token vocabulary
      std::vector<uint8_t> sorted16(2 * (size_t)V);
      for (uint32_t i = 0; i < V; i++) store_u16(&sorted16[2 * i], (uint16_t)tok.sorted[i]);
      w.add_raw(TensorKind::kTokSorted, kNoLayer, DType::kU16, 1, V, V * 2, sorted16.data());
    } else {
      w.add_raw(TensorKind::kTokSorted, kNoLayer, DType::kU32, 1, V, V * 4, sorted.data());
    }
  }
  const DType mdt = matrix_dtype_of(opts.quant);
  auto is_norm = [](const Mat& m) {
    return m.kind == TensorKind::kRmsAtt || m.kind == TensorKind::kRmsFfn ||
           m.kind == TensorKind::kRmsFinal;
  };
  // Importance per matrix input (calibrated images): the mean squares of the activations the
  // matrix multiplies. A shared embedding is also the classifier: half its weight is the
  // final norm output's importance, half uniform (the embedding row is added as it is).
  std::vector<std::vector<double>> site_imp;
  std::vector<double> emb_imp;
  if (calibrated) {
    for (const std::vector<double>& m : stats.msq) site_imp.push_back(importance_from(m));
    if (c.shared_classifier) {
      const std::vector<double>& f = site_imp.back();
      double mean = 0;
      for (double v : f) mean += v;
      mean /= (double)f.size();
      emb_imp.resize(f.size());
      for (size_t j = 0; j < f.size(); j++) emb_imp[j] = f[j] + mean;
    }
  }
  // The calibration site (CalibStats index) whose activations a matrix multiplies, or -1.
  // A shared embedding is also the classifier: it gets the final norm output's site.
  const int64_t final_site = (int64_t)L * kCalibSitesPerLayer;
  auto site_of = [&](const Mat& m) -> int64_t {
    const int64_t base = (int64_t)m.layer * kCalibSitesPerLayer;
    switch (m.kind) {
      case TensorKind::kWq:
      case TensorKind::kWk:
      case TensorKind::kWv:
        return base + (uint32_t)CalibSite::kAttnIn;
      case TensorKind::kWo:
        return base + (uint32_t)CalibSite::kAttnOut;
      case TensorKind::kW1:
      case TensorKind::kW3:
        return base + (uint32_t)CalibSite::kFfnIn;
      case TensorKind::kW2:
        return base + (uint32_t)CalibSite::kFfnHidden;
      case TensorKind::kClassifier:
        return final_site;
      case TensorKind::kTokEmbedding:
        return c.shared_classifier ? final_site : -1;
      default:
        return -1;
    }
  };
  // Importance: the site's, except for a shared embedding, which adds a uniform part for its
  // use as the embedding (and an unshared embedding, which is only looked up: none).
  auto importance_of = [&](const Mat& m) -> const double* {
    if (!calibrated) return nullptr;
    const int64_t site = site_of(m);
    if (site < 0) return nullptr;
    return m.kind == TensorKind::kTokEmbedding ? emb_imp.data() : site_imp[(size_t)site].data();
  };
  // The f32 weights the encoder quantizes: the checkpoint's, or (sequential compensation) a
  // copy whose matrices are the targets that absorb the upstream quantization error.
  Checkpoint target;
  const Checkpoint* src = &ck;
  // GPTQ factors and column orders per calibration site, computed when first needed. The
  // shared embedding's dampening is heavier: it stands for its plain use as the embedding.
  std::vector<std::vector<double>> factors(stats.gram.size());
  std::vector<std::vector<uint32_t>> orders(stats.gram.size());
  // The classifier (or a shared embedding) of a small model: every row has its own metric,
  // E[p_v x xᵀ] (the KL's Hessian block for that row), dampened; for a shared embedding more
  // heavily, standing for the row's use as the embedding.
  auto encode_classifier_rows = [&](const Mat& m, DType dt, uint32_t g,
                                    std::vector<uint8_t>* bytes) {
    const uint32_t n = m.cols;
    const size_t stride = row_stride_bytes(dt, n, g);
    const double damp =
        m.kind == TensorKind::kTokEmbedding ? kClassifierRowEmbeddingDamp : kGptqDamp;
    std::vector<double> h((size_t)n * n), u, imp(n);
    std::vector<uint32_t> ord(n);
    for (uint32_t v = 0; v < m.rows; v++) {
      const double* f = &stats.cls_gram[(size_t)v * n * n];
      double mean = 0;
      for (uint32_t j = 0; j < n; j++) mean += f[(size_t)j * n + j];
      mean = mean > 0 ? mean / n : 1.0;
      for (size_t k = 0; k < h.size(); k++) h[k] = f[k];
      for (uint32_t j = 0; j < n; j++) h[(size_t)j * n + j] += damp * mean;
      for (uint32_t j = 0; j < n; j++) {
        ord[j] = j;
        imp[j] = h[(size_t)j * n + j];
      }
      std::stable_sort(ord.begin(), ord.end(), [&](uint32_t a, uint32_t b) {
        return h[(size_t)a * n + a] > h[(size_t)b * n + b];
      });
      const float* wr = src->ptr(m.off) + (size_t)v * n;
      uint8_t* out = bytes->data() + (size_t)v * stride;
      if (gptq_factor(h.data(), n, ord.data(), 0.0, &u)) {
        encode_row_gptq(wr, n, dt, g, u.data(), ord.data(), h.data(), imp.data(), out);
      } else {
        encode_row(wr, n, dt, g, out, imp.data());
      }
    }
  };
  auto encode = [&](const Mat& m, DType dt, std::vector<uint8_t>* bytes) {
    const uint32_t g = dt == DType::kF32 ? 0 : opts.group;
    bytes->assign((size_t)m.rows * row_stride_bytes(dt, m.cols, g ? g : 1), 0);
    const int64_t site = opts.error_compensation && dt != DType::kF32 ? site_of(m) : -1;
    if (site == final_site && !stats.cls_gram.empty()) {
      encode_classifier_rows(m, dt, g, bytes);
      return;
    }
    if (site >= 0) {
      std::vector<double>& u = factors[(size_t)site];
      std::vector<uint32_t>& ord = orders[(size_t)site];
      if (ord.empty()) {  // GPTQ's "act order": columns by decreasing input energy
        const double* gm = stats.gram[(size_t)site].data();
        ord.resize(m.cols);
        for (uint32_t j = 0; j < m.cols; j++) ord[j] = j;
        std::stable_sort(ord.begin(), ord.end(), [&](uint32_t a, uint32_t b) {
          return gm[(size_t)a * m.cols + a] > gm[(size_t)b * m.cols + b];
        });
      }
      const double damp = m.kind == TensorKind::kTokEmbedding ? kGptqEmbeddingDamp : kGptqDamp;
      // A Gram matrix that is not positive definite even dampened leaves u empty: that
      // matrix gets the importance-weighted scales without compensation.
      if (u.empty()) gptq_factor(stats.gram[(size_t)site].data(), m.cols, ord.data(), damp, &u);
      if (!u.empty()) {
        encode_matrix_gptq(src->ptr(m.off), m.rows, m.cols, dt, g, u.data(), ord.data(),
                           stats.gram[(size_t)site].data(), importance_of(m), bytes->data(),
                           opts.threads);
        return;
      }
    }
    encode_matrix(src->ptr(m.off), m.rows, m.cols, dt, g, bytes->data(), opts.threads,
                  dt == DType::kF32 ? nullptr : importance_of(m));
  };

  // Points the matrix of `m` in cw (the embedding also as the shared classifier) at p.
  auto set_matrix = [&](CalibWeights* cw, const Mat& m, const float* p) {
    switch (m.kind) {
      case TensorKind::kTokEmbedding:
        cw->tok_emb = p;
        if (c.shared_classifier) cw->wcls = p;
        break;
      case TensorKind::kClassifier:
        cw->wcls = p;
        break;
      case TensorKind::kWq:
        cw->layers[m.layer].wq = p;
        break;
      case TensorKind::kWk:
        cw->layers[m.layer].wk = p;
        break;
      case TensorKind::kWv:
        cw->layers[m.layer].wv = p;
        break;
      case TensorKind::kWo:
        cw->layers[m.layer].wo = p;
        break;
      case TensorKind::kW1:
        cw->layers[m.layer].w1 = p;
        break;
      case TensorKind::kW2:
        cw->layers[m.layer].w2 = p;
        break;
      case TensorKind::kW3:
        cw->layers[m.layer].w3 = p;
        break;
      default:
        break;
    }
  };

  uint64_t layer_params = 0, site_floats = (uint64_t)d;
  for (const Mat& m : mats) {
    if (m.layer != kNoLayer) layer_params += (uint64_t)m.rows * m.cols;
  }
  for (const std::vector<double>& m : stats.msq) site_floats += m.size();
  std::vector<DType> dtypes(mats.size());
  std::vector<std::vector<uint8_t>> q8_bytes(mats.size());
  for (size_t i = 0; i < mats.size(); i++) dtypes[i] = is_norm(mats[i]) ? DType::kF32 : mdt;

  // Mixed precision under a byte budget: every matrix starts Q4; the ones whose Q8 encoding
  // removes the most calibration-weighted error per extra byte go Q8 while the image fits.
  if (opts.budget_bytes || fit) {
    const size_t tok_tensors = w.entries().size();
    uint64_t tok_end =
        (uint64_t)kHeaderSize + (uint64_t)(tok_tensors + mats.size()) * kTensorEntrySize;
    for (const ImageWriter::Entry& e : w.entries()) {
      tok_end = align_up(tok_end, kTensorAlign) + e.bytes.size();
    }
    auto image_size = [&]() {
      uint64_t end = tok_end;
      for (size_t i = 0; i < mats.size(); i++) {
        const uint32_t g = dtypes[i] == DType::kF32 ? 1 : opts.group;
        end = align_up(end, kTensorAlign) +
              (uint64_t)mats[i].rows * row_stride_bytes(dtypes[i], mats[i].cols, g);
      }
      return end;
    };
    // The image's sizes as the planner sees them (as sizes_from_image would read them).
    auto plan_now = [&]() {
      ModelSizes s;
      s.info = info;
      s.layer.assign(L, 0);
      s.layer_tensors.assign(L, {});
      for (const ImageWriter::Entry& e : w.entries()) {
        s.tokenizer += e.bytes.size();
        s.tokenizer_tensors.push_back(e.bytes.size());
      }
      for (size_t i = 0; i < mats.size(); i++) {
        const uint32_t g = dtypes[i] == DType::kF32 ? 1 : opts.group;
        const uint64_t stride = row_stride_bytes(dtypes[i], mats[i].cols, g);
        const uint64_t b = (uint64_t)mats[i].rows * stride;
        switch (mats[i].kind) {
          case TensorKind::kTokEmbedding:
            s.embedding = b;
            s.embedding_row = stride;
            break;
          case TensorKind::kClassifier:
            s.classifier = b;
            break;
          case TensorKind::kRmsFinal:
            s.rms_final = b;
            break;
          default:
            s.layer[mats[i].layer] += b;
            s.layer_tensors[mats[i].layer].push_back(b);
            break;
        }
      }
      PlanRequest req;
      req.boards = opts.fit_boards;
      req.kv = opts.kv;
      return make_plan(s, board, req);
    };
    auto fits = [&]() { return fit ? plan_now().fits : image_size() <= opts.budget_bytes; };
    const uint64_t q4_size = image_size();
    if (fit && !fits()) {
      const Plan p = plan_now();
      *err = "--fit: the all-Q4 image (" + std::to_string(q4_size) + " bytes) does not fit " +
             std::to_string(opts.fit_boards) + " " + board.name + " board" +
             (opts.fit_boards == 1 ? "" : "s") + (p.advice.empty() ? "" : ": " + p.advice) +
             " (give more --boards)";
      return false;
    }
    if (!fit && q4_size > opts.budget_bytes) {
      *err = "--budget " + std::to_string(opts.budget_bytes) + " bytes is less than the " +
             std::to_string(q4_size) +
             " bytes of the all-Q4 image; give at least that (or split over more boards)";
      return false;
    }
    struct Gain {
      double per_byte;
      size_t index;
    };
    std::vector<Gain> gains;
    // Measured sensitivity where affordable: the mean KL divergence from the f32 model, over
    // the first kSensitivityTokens of the calibration text, of the model with just that
    // matrix at Q4. Otherwise the calibration-weighted squared error Q8 removes.
    CalibText sub;
    for (const std::vector<int32_t>& ch : text.chunks) {
      if (sub.tokens >= kSensitivityTokens) break;
      sub.chunks.push_back(ch);
      sub.tokens += ch.size();
    }
    uint64_t n_mats = 0;
    for (const Mat& m : mats) {
      if (!is_norm(m)) n_mats++;
    }
    const double macs = (double)n_mats * (double)sub.tokens *
                        (double)(layer_params + (uint64_t)c.vocab_size * c.dim);
    calib.measured_sensitivity = macs <= kMaxSensitivityMacs;
    std::vector<std::vector<float>> deq(mats.size());
    std::vector<CalibWeights> variants;
    std::vector<size_t> variant_of;
    const CalibWeights base = CalibWeights::of(ck);
    uint64_t sdone = 0;
    for (size_t i = 0; i < mats.size(); i++) {
      const Mat& m = mats[i];
      if (is_norm(m)) continue;
      std::vector<uint8_t> b4;
      encode(m, DType::kQ4, &b4);
      encode(m, DType::kQ8, &q8_bytes[i]);
      const double extra = (double)q8_bytes[i].size() - (double)b4.size();
      if (calib.measured_sensitivity) {
        deq[i].resize((size_t)m.rows * m.cols);
        const uint32_t stride = row_stride_bytes(DType::kQ4, m.cols, opts.group);
        for (uint32_t r = 0; r < m.rows; r++) {
          decode_row(b4.data() + (size_t)r * stride, m.cols, DType::kQ4, opts.group,
                     deq[i].data() + (size_t)r * m.cols);
        }
        CalibWeights v = base;
        set_matrix(&v, m, deq[i].data());
        variants.push_back(v);
        variant_of.push_back(i);
        gains.push_back({extra, i});  // filled in below
      } else {
        const double* imp = importance_of(m);
        const double e4 =
            weighted_error(src->ptr(m.off), m.rows, m.cols, DType::kQ4, opts.group, b4.data(), imp);
        const double e8 = weighted_error(src->ptr(m.off), m.rows, m.cols, DType::kQ8, opts.group,
                                         q8_bytes[i].data(), imp);
        gains.push_back({(e4 - e8) / extra, i});
      }
      sdone += (uint64_t)m.rows * m.cols;
      if (progress) progress(sdone, total, "sensitivity");
    }
    if (calib.measured_sensitivity) {
      std::vector<double> kl;
      auto kl_progress = [&](uint64_t done, uint64_t all) {
        if (progress) progress(done, all, "KL");
      };
      if (!measure_kl(ck, c, sub, variants, opts.threads, kl_progress, &kl, err)) return false;
      for (size_t k = 0; k < gains.size(); k++) gains[k].per_byte = kl[k] / gains[k].per_byte;
    }
    std::stable_sort(gains.begin(), gains.end(),
                     [](const Gain& a, const Gain& b) { return a.per_byte > b.per_byte; });
    for (const Gain& g : gains) {
      dtypes[g.index] = DType::kQ8;
      if (!fits()) dtypes[g.index] = DType::kQ4;
    }
    for (size_t i = 0; i < mats.size(); i++) {
      if (dtypes[i] != DType::kQ8) std::vector<uint8_t>().swap(q8_bytes[i]);
    }
  }

  // Sequential compensation (small models, --gptq): the matrices are quantized (at the types
  // chosen above) in the order the model runs them, each one fitted to reproduce the f32
  // model's output from the inputs the model quantized so far gives it (the embedding first,
  // as the layers read it), so later matrices absorb the error of earlier ones.
  // ||Ŵx̃ - Wx||² = (Ŵ - W*) G̃ (Ŵ - W*)ᵀ + const, with G̃ = E[x̃x̃ᵀ], C = E[x x̃ᵀ] and
  // W* = (W C + λW)(G̃ + λI)⁻¹ (λ keeps W* near W where the text says little), so each
  // matrix is encoded as before from W* under G̃.
  // One forward pass up to each site (half the layers on average) per site.
  const double seq_macs = (double)final_site * (double)text.tokens * (double)layer_params / 2;
  const bool sequential = opts.error_compensation && seq_macs <= kMaxSequentialMacs &&
                          (double)text.tokens * (double)site_floats * 4 <= kMaxSequentialBytes;
  if (sequential) {
    for (std::vector<uint8_t>& b : q8_bytes) std::vector<uint8_t>().swap(b);  // from W* now
    SiteActivations ref;  // the f32 model's inputs at every site
    if (!record_sites(ck, c, text, opts.threads, &ref, err)) return false;
    target = ck;
    src = &target;
    CalibWeights qw = CalibWeights::of(ck);             // the model quantized so far (dequantized)
    std::vector<std::vector<float>> deqs(mats.size());  // its matrices
    auto quantize_into = [&](size_t i) {
      const Mat& m = mats[i];
      const DType dt = dtypes[i];
      std::vector<uint8_t> b;
      encode(m, dt, &b);
      deqs[i].resize((size_t)m.rows * m.cols);
      const uint32_t stride = row_stride_bytes(dt, m.cols, opts.group);
      for (uint32_t r = 0; r < m.rows; r++) {
        decode_row(b.data() + (size_t)r * stride, m.cols, dt, opts.group,
                   deqs[i].data() + (size_t)r * m.cols);
      }
      set_matrix(&qw, m, deqs[i].data());
    };
    quantize_into(0);  // the token embedding
    std::vector<double> gq, cr;
    for (int64_t site = 0; site < final_site; site++) {
      if (!collect_site_pair(ck, c, text, qw, (size_t)site, ref, opts.threads, &gq, &cr, err)) {
        return false;
      }
      const uint32_t n = (uint32_t)stats.msq[(size_t)site].size();
      // Cholesky factor of G̃ + λI (lower, in place).
      std::vector<double> a(gq);
      double mean = 0;
      for (uint32_t j = 0; j < n; j++) mean += gq[(size_t)j * n + j];
      mean = mean > 0 ? mean / n : 1.0;
      const double lambda = kSequentialDamp * mean;
      for (uint32_t j = 0; j < n; j++) a[(size_t)j * n + j] += lambda;
      bool spd = true;
      for (uint32_t j = 0; j < n && spd; j++) {
        for (uint32_t i = j; i < n; i++) {
          double v = a[(size_t)i * n + j];
          for (uint32_t k = 0; k < j; k++) v -= a[(size_t)i * n + k] * a[(size_t)j * n + k];
          if (i == j) {
            if (!(v > 0)) {
              spd = false;
              break;
            }
            a[(size_t)j * n + j] = std::sqrt(v);
          } else {
            a[(size_t)i * n + j] = v / a[(size_t)j * n + j];
          }
        }
      }
      for (size_t i = 0; i < mats.size(); i++) {
        const Mat& m = mats[i];
        if (is_norm(m) || m.layer == kNoLayer || site_of(m) != site) continue;
        if (spd) {
          std::vector<double> y(n);
          for (uint32_t r = 0; r < m.rows; r++) {
            const float* wr = ck.ptr(m.off) + (size_t)r * n;
            for (uint32_t j = 0; j < n; j++) {
              double v = lambda * (double)wr[j];
              for (uint32_t k = 0; k < n; k++) v += (double)wr[k] * cr[(size_t)k * n + j];
              y[j] = v;
            }
            for (uint32_t j = 0; j < n; j++) {  // L z = y
              double v = y[j];
              for (uint32_t k = 0; k < j; k++) v -= a[(size_t)j * n + k] * y[k];
              y[j] = v / a[(size_t)j * n + j];
            }
            for (uint32_t j = n; j-- > 0;) {  // Lᵀ w* = z
              double v = y[j];
              for (uint32_t k = j + 1; k < n; k++) v -= a[(size_t)k * n + j] * y[k];
              y[j] = v / a[(size_t)j * n + j];
            }
            float* tr = target.data.data() + m.off + (size_t)r * n;
            for (uint32_t j = 0; j < n; j++) tr[j] = (float)y[j];
          }
        }
      }
      if (spd) {
        std::vector<double> msq(n);
        for (uint32_t j = 0; j < n; j++) msq[j] = gq[(size_t)j * n + j];
        stats.msq[(size_t)site] = msq;
        stats.gram[(size_t)site] = gq;
        site_imp[(size_t)site] = importance_from(msq);
        factors[(size_t)site].clear();  // computed again from G̃ when first needed
        orders[(size_t)site].clear();
      }
      for (size_t i = 0; i < mats.size(); i++) {
        const Mat& m = mats[i];
        if (!is_norm(m) && m.layer != kNoLayer && site_of(m) == site) quantize_into(i);
      }
      if (progress) progress((uint64_t)site + 1, (uint64_t)final_site, "sequential");
    }
    calib.sequential = true;
  }

  uint64_t done = 0;
  for (size_t i = 0; i < mats.size(); i++) {
    const Mat& m = mats[i];
    const DType dt = dtypes[i];
    std::vector<uint8_t> bytes;
    if (dt == DType::kQ8 && !q8_bytes[i].empty()) {
      bytes.swap(q8_bytes[i]);
    } else {
      encode(m, dt, &bytes);
    }
    const uint32_t g = dt == DType::kF32 ? 0 : opts.group;
    w.add_raw(m.kind, m.layer, dt, m.rows, m.cols, row_stride_bytes(dt, m.cols, g ? g : 1),
              bytes.data());
    if (!is_norm(m) && calibrated) {
      calib.matrices++;
      if (dt == DType::kQ8 && mdt == DType::kQ4) calib.q8_matrices++;
    }
    done += (uint64_t)m.rows * m.cols;
    if (progress) {
      std::string what = m.name;
      if (m.layer != kNoLayer) what = "layer " + std::to_string(m.layer) + " " + what;
      progress(done, total, what.c_str());
    }
  }
  bool mixed = false;
  for (size_t i = 0; i < mats.size(); i++) mixed |= !is_norm(mats[i]) && dtypes[i] != mdt;
  if (calibrated) {
    w.info().quant_method = kQuantImportance | (opts.error_compensation ? kQuantErrorComp : 0u) |
                            (mixed ? kQuantMixed : 0u);
    w.info().calib_tokens = (uint32_t)std::min<uint64_t>(calib.tokens, 0xFFFFFFFFu);
    w.info().calib_crc = calib.text_crc;
  }

  // Budget, from the encoded entries.
  ConvertReport r;
  r.calib = calib;
  BudgetLine emb{"embedding"}, att{"attention"}, ffn{"ffn"}, norms{"norms"}, cls{"classifier"},
      tkn{"tokenizer"};
  uint64_t embedding_row = 0, embedding_bytes = 0;
  for (const ImageWriter::Entry& e : w.entries()) {
    const uint64_t params = (uint64_t)e.rows * e.cols, bytes = e.bytes.size();
    BudgetLine* line = nullptr;
    switch (e.kind) {
      case TensorKind::kTokEmbedding:
        line = &emb;
        embedding_row = e.row_stride;
        embedding_bytes = bytes;
        break;
      case TensorKind::kWq:
      case TensorKind::kWk:
      case TensorKind::kWv:
      case TensorKind::kWo:
        line = &att;
        break;
      case TensorKind::kW1:
      case TensorKind::kW2:
      case TensorKind::kW3:
        line = &ffn;
        break;
      case TensorKind::kRmsAtt:
      case TensorKind::kRmsFfn:
      case TensorKind::kRmsFinal:
        line = &norms;
        break;
      case TensorKind::kClassifier:
        line = &cls;
        break;
      default:
        line = &tkn;
        break;
    }
    if (line != &tkn) line->params += params;  // tokenizer arrays are not weights
    line->bytes += bytes;
  }
  if (c.shared_classifier) cls.note = "shared with the embedding (no extra bytes)";
  r.lines = {emb, att, ffn, norms, cls, tkn};
  // Every weight byte read once per generated token: all layer matrices, all norms, the
  // classifier (the embedding matrix when shared), and one embedding row.
  r.weight_bytes_per_token = att.bytes + ffn.bytes + norms.bytes +
                             (c.shared_classifier ? embedding_bytes : cls.bytes) + embedding_row;

  if (!w.write(opts.output_path, err)) return false;
  r.image_bytes = w.info().file_size;
  r.model_id = w.info().model_id;
  if (report) *report = r;
  return true;
}

}  // namespace llmwire
