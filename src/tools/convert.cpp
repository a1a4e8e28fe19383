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
#include <string.h>

#include <cmath>

#include "engine/fp16.h"
#include "engine/image_header.h"
#include "engine/tokenizer.h"
#include "platform/host/output_file.h"
#include "tools/checkpoint.h"
#include "tools/image_writer.h"
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

}  // namespace

bool convert_checkpoint(const ConvertOptions& opts, ConvertReport* report,
                        const ProgressFn& progress, std::string* err) {
  const bool quantized = opts.quant != WeightType::kF32;
  if ((uint32_t)opts.quant > (uint32_t)WeightType::kQ4) {
    *err = "unknown weight type (use f32, q8 or q4)";
    return false;
  }
  if ((uint32_t)opts.kv > (uint32_t)KvType::kF16) {
    *err = "unknown KV cache type (use f32 or f16)";
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
  uint64_t done = 0;
  for (const Mat& m : mats) {
    const bool norm = m.kind == TensorKind::kRmsAtt || m.kind == TensorKind::kRmsFfn ||
                      m.kind == TensorKind::kRmsFinal;
    const DType dt = norm ? DType::kF32 : mdt;
    w.add_matrix(m.kind, m.layer, dt, m.rows, m.cols, dt == DType::kF32 ? 0 : opts.group,
                 ck.ptr(m.off));
    done += (uint64_t)m.rows * m.cols;
    if (progress) {
      std::string what = m.name;
      if (m.layer != kNoLayer) what = "layer " + std::to_string(m.layer) + " " + what;
      progress(done, total, what.c_str());
    }
  }

  // Budget, from the encoded entries.
  ConvertReport r;
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
