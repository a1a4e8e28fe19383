// convert: checkpoint + tokenizer -> image, checked against the checkpoint tensor by tensor.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "engine/image.h"
#include "engine/image_header.h"
#include "test_util.h"
#include "tools/checkpoint.h"
#include "tools/convert.h"
#include "tools/quantize.h"
#include "tools/synth.h"

using namespace llmwire;
using llmwire::test::TempDir;

namespace {

struct Parsed {
  std::vector<uint8_t> bytes;
  ImageInfo info;
  struct T {
    uint16_t kind, layer;
    DType dtype;
    uint32_t rows, cols, stride;
    uint64_t off, size;
  };
  std::vector<T> table;
  const T* find(TensorKind k, uint32_t layer) const {
    for (const T& t : table) {
      if (t.kind == (uint16_t)k && t.layer == layer) return &t;
    }
    return nullptr;
  }
};

Parsed parse(const std::string& path) {
  Parsed p;
  p.bytes = llmwire::test::read_bytes(path);
  EXPECT_EQ(decode_header(p.bytes.data(), p.bytes.size(), &p.info), Status::kOk);
  for (uint32_t i = 0; i < p.info.tensor_count; i++) {
    const uint8_t* e = p.bytes.data() + p.info.table_offset + 40 * i;
    p.table.push_back({load_u16(e), load_u16(e + 2), (DType)e[4], load_u32(e + 8), load_u32(e + 12),
                       load_u32(e + 16), load_u64(e + 24), load_u64(e + 32)});
  }
  return p;
}

struct ModelFiles {
  ModelConfig c;
  std::string ckpt, tok;
};

ModelFiles make_model(const TempDir& dir, bool shared, uint64_t seed = 9) {
  ModelFiles s;
  s.c = llmwire::test::small_config(64, 100, 2, 4, 2, 320, 16, shared);
  s.ckpt = dir.file(shared ? "tiny.bin" : "tiny_sep.bin");
  s.tok = dir.file("tiny.tok");
  std::string err;
  EXPECT_TRUE(synth_checkpoint(s.c, seed, s.ckpt, &err)) << err;
  EXPECT_TRUE(synth_tokenizer(320, seed, s.tok, &err)) << err;
  return s;
}

ConvertOptions opts_for(const ModelFiles& s, const std::string& out, WeightType q,
                        uint32_t group = 32) {
  ConvertOptions o;
  o.checkpoint_path = s.ckpt;
  o.tokenizer_path = s.tok;
  o.output_path = out;
  o.quant = q;
  o.group = group;
  return o;
}

}  // namespace

TEST(Convert, TensorsDequantizeCloseToCheckpoint) {
  TempDir dir;
  for (bool shared : {true, false}) {
    const ModelFiles s = make_model(dir, shared);
    Checkpoint ck;
    std::string err;
    ASSERT_TRUE(load_checkpoint(s.ckpt, &ck, &err)) << err;
    for (WeightType q : {WeightType::kF32, WeightType::kQ8, WeightType::kQ4}) {
      const std::string out =
          dir.file("m" + std::to_string((int)q) + (shared ? "s" : "x") + ".img");
      ConvertReport rep;
      std::vector<uint64_t> seen;
      uint64_t total_seen = 0;
      ProgressFn progress = [&](uint64_t done, uint64_t total, const char* what) {
        EXPECT_NE(what, nullptr);
        if (!seen.empty()) {
          EXPECT_GE(done, seen.back());
        }
        seen.push_back(done);
        total_seen = total;
      };
      ASSERT_TRUE(convert_checkpoint(opts_for(s, out, q), &rep, progress, &err)) << err;
      ASSERT_FALSE(seen.empty());
      EXPECT_EQ(seen.back(), total_seen);

      // The engine accepts the image (every check in docs/FORMAT.md).
      const Parsed p = parse(out);
      Image image;
      ASSERT_EQ(image.open(p.bytes.data(), p.bytes.size(), true), Status::kOk)
          << "failed tensor " << image.failed_tensor();

      const ImageInfo& h = p.info;
      EXPECT_EQ(h.file_size, p.bytes.size());
      EXPECT_EQ(h.weight_type, q);
      EXPECT_EQ(h.group_size, q == WeightType::kF32 ? 0u : 32u);
      EXPECT_EQ(h.stage_index, 0u);
      EXPECT_EQ(h.stage_count, 1u);
      EXPECT_EQ(h.layer_begin, 0u);
      EXPECT_EQ(h.layer_end, 2u);
      EXPECT_EQ(h.config.seq_len, 16u);
      EXPECT_EQ(h.config.shared_classifier, shared);
      EXPECT_EQ(h.flags & 0xEu,
                (uint32_t)(kFlagHasTokenizer | kFlagHasEmbedding | kFlagHasClassifier));
      EXPECT_EQ(h.bos_id, 1u);
      EXPECT_EQ(h.eos_id, 2u);
      EXPECT_EQ(h.norm_eps, 1e-5f);
      EXPECT_EQ(h.rope_theta, 10000.0f);
      EXPECT_STREQ(h.model_name, shared ? "tiny" : "tiny_sep");
      EXPECT_EQ(h.model_id, rep.model_id);
      EXPECT_EQ(p.table.size(), 4u + 1 + 2 * 9 + 1 + (shared ? 0 : 1));

      // Every weight tensor against the checkpoint, with offsets from SOURCES.md.
      const uint32_t d = 64, hd = 100, kv = 32, V = 320;
      struct Want {
        TensorKind k;
        uint32_t layer;
        size_t off;
        uint32_t rows, cols;
      };
      std::vector<Want> want;
      size_t o = 0;
      const size_t emb = o;
      want.push_back({TensorKind::kTokEmbedding, kNoLayer, emb, V, d});
      o += (size_t)V * d;
      const size_t rms_att = o;
      o += 2 * d;
      const size_t wq = o;
      o += 2 * d * d;
      const size_t wk = o;
      o += 2 * kv * d;
      const size_t wv = o;
      o += 2 * kv * d;
      const size_t wo = o;
      o += 2 * d * d;
      const size_t rms_ffn = o;
      o += 2 * d;
      const size_t w1 = o;
      o += 2 * hd * d;
      const size_t w2 = o;
      o += 2 * hd * d;
      const size_t w3 = o;
      o += 2 * hd * d;
      const size_t rms_final = o;
      o += d + 16 * (d / 4);
      for (uint32_t l = 0; l < 2; l++) {
        want.push_back({TensorKind::kRmsAtt, l, rms_att + l * d, 1, d});
        want.push_back({TensorKind::kWq, l, wq + l * d * d, d, d});
        want.push_back({TensorKind::kWk, l, wk + l * kv * d, kv, d});
        want.push_back({TensorKind::kWv, l, wv + l * kv * d, kv, d});
        want.push_back({TensorKind::kWo, l, wo + l * d * d, d, d});
        want.push_back({TensorKind::kRmsFfn, l, rms_ffn + l * d, 1, d});
        want.push_back({TensorKind::kW1, l, w1 + l * hd * d, hd, d});
        want.push_back({TensorKind::kW2, l, w2 + l * hd * d, d, hd});
        want.push_back({TensorKind::kW3, l, w3 + l * hd * d, hd, d});
      }
      want.push_back({TensorKind::kRmsFinal, kNoLayer, rms_final, 1, d});
      if (!shared) want.push_back({TensorKind::kClassifier, kNoLayer, o, V, d});
      uint64_t weight_bytes = 0, emb_row = 0;
      for (const Want& wt : want) {
        const Parsed::T* t = p.find(wt.k, wt.layer);
        ASSERT_NE(t, nullptr) << (int)wt.k << " layer " << wt.layer;
        EXPECT_EQ(t->rows, wt.rows);
        EXPECT_EQ(t->cols, wt.cols);
        const bool norm = wt.k == TensorKind::kRmsAtt || wt.k == TensorKind::kRmsFfn ||
                          wt.k == TensorKind::kRmsFinal;
        const DType dt = norm || q == WeightType::kF32 ? DType::kF32
                         : q == WeightType::kQ8        ? DType::kQ8
                                                       : DType::kQ4;
        EXPECT_EQ(t->dtype, dt);
        EXPECT_EQ(t->off % 64, 0u);
        if (wt.k == TensorKind::kTokEmbedding) emb_row = t->stride;
        if (wt.k != TensorKind::kTokEmbedding || shared) weight_bytes += t->size;
        std::vector<float> row(wt.cols);
        double err2 = 0, energy = 0;
        for (uint32_t r = 0; r < wt.rows; r++) {
          decode_row(p.bytes.data() + t->off + (size_t)r * t->stride, wt.cols, dt, 32, row.data());
          const float* src = ck.data.data() + wt.off + (size_t)r * wt.cols;
          for (uint32_t j = 0; j < wt.cols; j++) {
            if (dt == DType::kF32) {
              ASSERT_EQ(row[j], src[j]);
            }
            const double e = (double)row[j] - src[j];
            err2 += e * e;
            energy += (double)src[j] * src[j];
          }
        }
        const double rel = err2 / energy;
        EXPECT_LT(rel, dt == DType::kQ4   ? 0.015
                       : dt == DType::kQ8 ? 1e-4
                                          : 1e-30)
            << (int)wt.k << " layer " << wt.layer;
      }
      // Tokenizer tensors present with the engine's shapes.
      for (TensorKind k : {TensorKind::kTokScores, TensorKind::kTokOffsets, TensorKind::kTokBytes,
                           TensorKind::kTokSorted}) {
        const Parsed::T* t = p.find(k, kNoLayer);
        ASSERT_NE(t, nullptr);
        EXPECT_EQ(t->rows, 1u);
      }

      // Report consistent with the table.
      std::map<std::string, const BudgetLine*> lines;
      uint64_t sum = 0;
      for (const BudgetLine& l : rep.lines) {
        lines[l.family] = &l;
        sum += l.bytes;
      }
      ASSERT_EQ(lines.size(), 6u);
      auto bytes_of = [&](std::initializer_list<TensorKind> kinds) {
        uint64_t b = 0;
        for (const Parsed::T& t : p.table) {
          for (TensorKind k : kinds) b += t.kind == (uint16_t)k ? t.size : 0;
        }
        return b;
      };
      EXPECT_EQ(lines["embedding"]->params, (uint64_t)V * d);
      EXPECT_EQ(lines["attention"]->params, 2ull * (2 * d * d + 2 * kv * d));
      EXPECT_EQ(lines["ffn"]->params, 2ull * 3 * hd * d);
      EXPECT_EQ(lines["norms"]->params, (2ull * 2 + 1) * d);
      EXPECT_EQ(lines["classifier"]->params, shared ? 0ull : (uint64_t)V * d);
      EXPECT_EQ(lines["attention"]->bytes,
                bytes_of({TensorKind::kWq, TensorKind::kWk, TensorKind::kWv, TensorKind::kWo}));
      EXPECT_EQ(lines["ffn"]->bytes, bytes_of({TensorKind::kW1, TensorKind::kW2, TensorKind::kW3}));
      EXPECT_EQ(lines["tokenizer"]->bytes,
                bytes_of({TensorKind::kTokScores, TensorKind::kTokOffsets, TensorKind::kTokBytes,
                          TensorKind::kTokSorted}));
      EXPECT_EQ(lines["classifier"]->bytes, bytes_of({TensorKind::kClassifier}));
      if (shared) {
        EXPECT_FALSE(lines["classifier"]->note.empty());
      }
      EXPECT_EQ(rep.image_bytes, p.bytes.size());
      EXPECT_LE(sum, rep.image_bytes);
      EXPECT_LT(rep.image_bytes - sum, 256u + 40u * p.table.size() + 64u * p.table.size());
      EXPECT_EQ(rep.weight_bytes_per_token, weight_bytes + emb_row);
      if (q == WeightType::kQ4) {
        // FORMAT.md strides: w1/w3 rows of 64 columns = 2 groups (4 scale bytes + 2 x 16);
        // w2 rows of 100 columns = 4 groups (8 scale bytes + 4 x 16).
        EXPECT_EQ(lines["ffn"]->bytes, 2ull * (2 * hd * (4 + 2 * 16) + d * (8 + 4 * 16)));
      }
    }
  }
}

TEST(Convert, Deterministic) {
  TempDir dir;
  const ModelFiles s = make_model(dir, true);
  std::string err;
  ConvertReport a, b, c;
  ASSERT_TRUE(
      convert_checkpoint(opts_for(s, dir.file("a.img"), WeightType::kQ4), &a, nullptr, &err));
  ASSERT_TRUE(
      convert_checkpoint(opts_for(s, dir.file("b.img"), WeightType::kQ4), &b, nullptr, &err));
  ASSERT_TRUE(
      convert_checkpoint(opts_for(s, dir.file("c.img"), WeightType::kQ8), &c, nullptr, &err));
  EXPECT_EQ(llmwire::test::read_bytes(dir.file("a.img")),
            llmwire::test::read_bytes(dir.file("b.img")));
  EXPECT_EQ(a.model_id, b.model_id);
  EXPECT_NE(a.model_id, c.model_id);
}

TEST(Convert, OptionsAndHeaderFields) {
  TempDir dir;
  const ModelFiles s = make_model(dir, true);
  std::string err;
  ConvertOptions o = opts_for(s, dir.file("o.img"), WeightType::kQ4, 16);
  o.seq_len = 8;
  o.kv = KvType::kF16;
  o.model_name = "custom";
  ASSERT_TRUE(convert_checkpoint(o, nullptr, nullptr, &err)) << err;
  const Parsed p = parse(o.output_path);
  EXPECT_EQ(p.info.config.seq_len, 8u);
  EXPECT_EQ(p.info.kv_type, KvType::kF16);
  EXPECT_EQ(p.info.group_size, 16u);
  EXPECT_STREQ(p.info.model_name, "custom");
  EXPECT_GT(p.info.tok_max_len, 0u);

  for (uint32_t bad_group : {0u, 4u, 12u, 264u, 512u}) {
    ConvertOptions b = opts_for(s, dir.file("bad.img"), WeightType::kQ4, bad_group);
    EXPECT_FALSE(convert_checkpoint(b, nullptr, nullptr, &err)) << bad_group;
    EXPECT_NE(err.find("group"), std::string::npos) << err;
  }
  ConvertOptions f = opts_for(s, dir.file("f.img"), WeightType::kF32, 12);  // group unused
  EXPECT_TRUE(convert_checkpoint(f, nullptr, nullptr, &err)) << err;
  ConvertOptions longer = opts_for(s, dir.file("bad.img"), WeightType::kQ4);
  longer.seq_len = 17;
  EXPECT_FALSE(convert_checkpoint(longer, nullptr, nullptr, &err));
  EXPECT_NE(err.find("17"), std::string::npos) << err;
  ConvertOptions no_tok = opts_for(s, dir.file("bad.img"), WeightType::kQ4);
  no_tok.tokenizer_path = dir.file("missing.tok");
  EXPECT_FALSE(convert_checkpoint(no_tok, nullptr, nullptr, &err));
  // A tokenizer with fewer tokens than the model's vocabulary.
  ASSERT_TRUE(synth_tokenizer(300, 1, dir.file("small.tok"), &err)) << err;
  ConvertOptions small = opts_for(s, dir.file("bad.img"), WeightType::kQ4);
  small.tokenizer_path = dir.file("small.tok");
  EXPECT_FALSE(convert_checkpoint(small, nullptr, nullptr, &err));
  // Unwritable output.
  ConvertOptions nowhere = opts_for(s, dir.file("no/dir/x.img"), WeightType::kQ4);
  EXPECT_FALSE(convert_checkpoint(nowhere, nullptr, nullptr, &err));
  EXPECT_NE(access(dir.file("bad.img").c_str(), F_OK), 0) << "no image written on failure";
}

TEST(Convert, RefusesNonFiniteWeights) {
  TempDir dir;
  const ModelFiles s = make_model(dir, true);
  std::string bytes = llmwire::test::read_file(s.ckpt);
  const float nan = NAN;
  std::memcpy(&bytes[28 + 4 * (320 * 64 + 2 * 64 + 5)], &nan, 4);  // wq of layer 0
  { std::ofstream(dir.file("nan.bin"), std::ios::binary) << bytes; }
  ConvertOptions o = opts_for(s, dir.file("nan.img"), WeightType::kQ4);
  o.checkpoint_path = dir.file("nan.bin");
  std::string err;
  EXPECT_FALSE(convert_checkpoint(o, nullptr, nullptr, &err));
  EXPECT_NE(err.find("wq"), std::string::npos) << err;
}

TEST(Convert, SynthTokenizerIsValid) {
  TempDir dir;
  for (uint32_t v : {300u, 512u, 2000u}) {
    std::string err;
    const std::string path = dir.file("t" + std::to_string(v));
    ASSERT_TRUE(synth_tokenizer(v, 5, path, &err)) << err;
    const std::vector<uint8_t> b = llmwire::test::read_bytes(path);
    // Parse the llama2.c layout here: int32 max_len; per token float score, int32 len, bytes.
    size_t off = 4;
    int32_t max_len;
    std::memcpy(&max_len, b.data(), 4);
    std::vector<std::string> pieces;
    std::vector<float> scores;
    while (off < b.size()) {
      float sc;
      int32_t len;
      std::memcpy(&sc, &b[off], 4);
      std::memcpy(&len, &b[off + 4], 4);
      ASSERT_GT(len, 0);
      ASSERT_LE(len, max_len);
      pieces.emplace_back(reinterpret_cast<const char*>(&b[off + 8]), (size_t)len);
      scores.push_back(sc);
      off += 8 + (size_t)len;
    }
    ASSERT_EQ(off, b.size());
    ASSERT_EQ(pieces.size(), v);
    EXPECT_EQ(pieces[0], "<unk>");
    EXPECT_EQ(pieces[1], "<s>");
    EXPECT_EQ(pieces[2], "</s>");
    EXPECT_EQ(pieces[3], "<0x00>");
    EXPECT_EQ(pieces[258], "<0xFF>");
    std::set<std::string> uniq(pieces.begin(), pieces.end());
    EXPECT_EQ(uniq.size(), pieces.size());
    for (size_t i = 260; i < pieces.size(); i++) EXPECT_LT(scores[i], scores[i - 1]);
  }
}

// The CLI end to end: synth + convert print the budget and the fit verdict.
TEST(Convert, CliSynthAndConvert) {
  if (access(LLMWIRE_BIN, X_OK) != 0) GTEST_SKIP() << "no CLI binary at " << LLMWIRE_BIN;
  TempDir dir;
  const std::string bin = LLMWIRE_BIN;
  const std::string synth = bin +
                            " synth --dim 32 --hidden 40 --layers 2 --heads 4 --kv-heads 2 "
                            "--vocab 300 --seq 8 --seed 3 -o " +
                            dir.file("c.bin") + " --tokenizer-out " + dir.file("c.tok") + " > " +
                            dir.file("s.out");
  ASSERT_EQ(std::system(synth.c_str()), 0);
  const std::string conv = bin + " convert " + dir.file("c.bin") + " " + dir.file("c.tok") +
                           " -o " + dir.file("c.img") + " --quant q8 --group 16 > " +
                           dir.file("c.out") + " 2> " + dir.file("c.err");
  ASSERT_EQ(std::system(conv.c_str()), 0);
  const std::string out = llmwire::test::read_file(dir.file("c.out"));
  EXPECT_NE(out.find("fits: yes"), std::string::npos) << out;
  EXPECT_NE(out.find("attention"), std::string::npos) << out;
  EXPECT_NE(out.find("weight bytes read per generated token"), std::string::npos) << out;
  EXPECT_NE(llmwire::test::read_file(dir.file("c.err")).find("100%"), std::string::npos);
  // Errors exit non-zero with a message, never a crash.
  const std::string swapped = bin + " convert " + dir.file("c.tok") + " " + dir.file("c.bin") +
                              " -o " + dir.file("x.img") + " 2> " + dir.file("x.err");
  const int rc = std::system(swapped.c_str());
  EXPECT_TRUE(WIFEXITED(rc) && WEXITSTATUS(rc) != 0);
  EXPECT_NE(llmwire::test::read_file(dir.file("x.err")).find("tokenizer"), std::string::npos);
  const std::string noshape =
      bin + " synth --dim 32 -o " + dir.file("y.bin") + " 2> " + dir.file("y.err");
  const int rc2 = std::system(noshape.c_str());
  EXPECT_TRUE(WIFEXITED(rc2) && WEXITSTATUS(rc2) != 0);
  EXPECT_NE(llmwire::test::read_file(dir.file("y.err")).find("--hidden"), std::string::npos);
}
