// llama2.c legacy checkpoints: reading, validation, writing, synthetic ones.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "test_util.h"
#include "tools/checkpoint.h"
#include "tools/synth.h"

using namespace llmwire;
using llmwire::test::TempDir;

namespace {

// Floats after the header, from the SOURCES.md layout.
uint64_t floats_of(uint64_t d, uint64_t h, uint64_t L, uint64_t nh, uint64_t kvh, uint64_t V,
                   uint64_t seq, bool shared) {
  const uint64_t kv = d / nh * kvh, hs = d / nh;
  return V * d + L * d + L * d * d + 2 * L * d * kv + L * d * d + L * d + 3 * L * h * d + d +
         2 * (seq * hs / 2) + (shared ? 0 : V * d);
}

void write_raw(const std::string& path, const std::vector<int32_t>& header, size_t floats,
               float fill = 0.25f) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(header.data()), (std::streamsize)(header.size() * 4));
  std::vector<float> v(floats, fill);
  f.write(reinterpret_cast<const char*>(v.data()), (std::streamsize)(v.size() * 4));
}

std::string load_error(const std::string& path) {
  Checkpoint ck;
  std::string err;
  EXPECT_FALSE(load_checkpoint(path, &ck, &err)) << path;
  EXPECT_FALSE(err.empty());
  return err;
}

}  // namespace

TEST(Checkpoint, WriteLoadRoundTripWithIndependentLayout) {
  TempDir dir;
  for (bool shared : {true, false}) {
    ModelConfig c = llmwire::test::small_config(64, 100, 2, 4, 2, 320, 16, shared);
    const uint64_t n = floats_of(64, 100, 2, 4, 2, 320, 16, shared);
    ASSERT_EQ(checkpoint_bytes(c), 28 + 4 * n);
    std::vector<float> data(n);
    for (uint64_t i = 0; i < n; i++) data[i] = (float)i * 0.5f;
    const std::string path = dir.file(shared ? "s.bin" : "x.bin");
    std::string err;
    ASSERT_TRUE(write_checkpoint(path, c, data, &err)) << err;
    const std::vector<uint8_t> raw = llmwire::test::read_bytes(path);
    ASSERT_EQ(raw.size(), 28 + 4 * n);
    int32_t h[7];
    std::memcpy(h, raw.data(), 28);
    EXPECT_EQ(h[0], 64);
    EXPECT_EQ(h[5], shared ? 320 : -320);

    Checkpoint ck;
    ASSERT_TRUE(load_checkpoint(path, &ck, &err)) << err;
    EXPECT_EQ(ck.config.dim, 64u);
    EXPECT_EQ(ck.config.hidden_dim, 100u);
    EXPECT_EQ(ck.config.n_layers, 2u);
    EXPECT_EQ(ck.config.n_heads, 4u);
    EXPECT_EQ(ck.config.n_kv_heads, 2u);
    EXPECT_EQ(ck.config.vocab_size, 320u);
    EXPECT_EQ(ck.config.seq_len, 16u);
    EXPECT_EQ(ck.config.shared_classifier, shared);
    ASSERT_EQ(ck.data.size(), n);
    EXPECT_EQ(ck.data, data);
    // Offsets from SOURCES.md: tok_emb, rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3, rms_final.
    const uint64_t d = 64, hd = 100, L = 2, V = 320, kv = 32;
    uint64_t o = 0;
    EXPECT_EQ(ck.tok_emb, o);
    EXPECT_EQ(ck.rms_att, o += V * d);
    EXPECT_EQ(ck.wq, o += L * d);
    EXPECT_EQ(ck.wk, o += L * d * d);
    EXPECT_EQ(ck.wv, o += L * d * kv);
    EXPECT_EQ(ck.wo, o += L * d * kv);
    EXPECT_EQ(ck.rms_ffn, o += L * d * d);
    EXPECT_EQ(ck.w1, o += L * d);
    EXPECT_EQ(ck.w2, o += L * hd * d);
    EXPECT_EQ(ck.w3, o += L * d * hd);
    EXPECT_EQ(ck.rms_final, o += L * hd * d);
    o += d + 16 * (d / 4);  // freq_cis_real + freq_cis_imag
    EXPECT_EQ(ck.wcls, shared ? ck.tok_emb : o);
    EXPECT_EQ(*ck.ptr(ck.rms_final), (float)ck.rms_final * 0.5f);
  }
}

TEST(Checkpoint, SynthRoundTripAndDeterminism) {
  TempDir dir;
  ModelConfig c = llmwire::test::small_config(64, 100, 2, 4, 2, 320, 16, false);
  std::string err;
  ASSERT_TRUE(synth_checkpoint(c, 3, dir.file("a.bin"), &err)) << err;
  ASSERT_TRUE(synth_checkpoint(c, 3, dir.file("b.bin"), &err)) << err;
  ASSERT_TRUE(synth_checkpoint(c, 4, dir.file("c.bin"), &err)) << err;
  EXPECT_EQ(llmwire::test::read_file(dir.file("a.bin")),
            llmwire::test::read_file(dir.file("b.bin")));
  EXPECT_NE(llmwire::test::read_file(dir.file("a.bin")),
            llmwire::test::read_file(dir.file("c.bin")));
  Checkpoint ck;
  ASSERT_TRUE(load_checkpoint(dir.file("a.bin"), &ck, &err)) << err;
  EXPECT_FALSE(ck.config.shared_classifier);
  EXPECT_EQ(ck.config.vocab_size, 320u);
  // Statistics: embedding std ~1, wq std ~1/sqrt(dim), norms ~1, freq tables zero.
  auto stats = [&](size_t off, size_t n, double* mean, double* sd) {
    double s = 0, s2 = 0;
    for (size_t i = 0; i < n; i++) {
      s += ck.data[off + i];
      s2 += (double)ck.data[off + i] * ck.data[off + i];
    }
    *mean = s / n;
    *sd = std::sqrt(s2 / n - *mean * *mean);
  };
  double m, sd;
  stats(ck.tok_emb, 320 * 64, &m, &sd);
  EXPECT_NEAR(sd, 1.0, 0.05);
  stats(ck.wq, 2 * 64 * 64, &m, &sd);
  EXPECT_NEAR(sd, 0.125, 0.01);
  EXPECT_NEAR(m, 0.0, 0.01);
  stats(ck.rms_att, 2 * 64, &m, &sd);
  EXPECT_NEAR(m, 1.0, 0.05);
  for (size_t i = ck.rms_final + 64; i < ck.wcls; i++) EXPECT_EQ(ck.data[i], 0.0f);
}

TEST(Checkpoint, ShapeConfigs) {
  ModelConfig c;
  ASSERT_TRUE(shape_config("stories260K", &c));
  EXPECT_EQ(checkpoint_bytes(c), 1056540u);  // SOURCES.md
  ASSERT_TRUE(shape_config("stories15M", &c));
  EXPECT_EQ(checkpoint_bytes(c), 60816028u);
  ASSERT_TRUE(shape_config("stories42M", &c));
  EXPECT_EQ(checkpoint_bytes(c), 167020572u);
  ASSERT_TRUE(shape_config("stories110M", &c));
  EXPECT_EQ(checkpoint_bytes(c), 438381596u);
  EXPECT_FALSE(shape_config("stories1B", &c));
}

TEST(Checkpoint, TruncatedAndExtraBytes) {
  TempDir dir;
  ModelConfig c = llmwire::test::small_config(32, 48, 1, 2, 2, 300, 8, true);
  std::string err;
  ASSERT_TRUE(synth_checkpoint(c, 1, dir.file("m.bin"), &err)) << err;
  std::string bytes = llmwire::test::read_file(dir.file("m.bin"));
  {
    std::ofstream(dir.file("short.bin"), std::ios::binary) << bytes.substr(0, bytes.size() - 100);
    const std::string e = load_error(dir.file("short.bin"));
    EXPECT_NE(e.find("truncated"), std::string::npos) << e;
    EXPECT_NE(e.find(std::to_string(bytes.size())), std::string::npos) << e;  // expected size
  }
  {
    std::ofstream(dir.file("long.bin"), std::ios::binary) << bytes << "extra";
    const std::string e = load_error(dir.file("long.bin"));
    EXPECT_NE(e.find("extra"), std::string::npos) << e;
  }
  {
    std::ofstream(dir.file("tiny.bin"), std::ios::binary) << bytes.substr(0, 10);
    const std::string e = load_error(dir.file("tiny.bin"));
    EXPECT_NE(e.find("shorter than"), std::string::npos) << e;
  }
  {
    std::ofstream(dir.file("empty.bin"), std::ios::binary);
    load_error(dir.file("empty.bin"));
  }
  load_error(dir.file("does-not-exist.bin"));
  load_error(dir.path);  // a directory
}

TEST(Checkpoint, BadHeaders) {
  TempDir dir;
  struct Case {
    std::vector<int32_t> h;
    const char* expect;
  } cases[] = {
      {{0, 48, 1, 2, 2, 300, 8}, "dim"},         {{32, 0, 1, 2, 2, 300, 8}, "hidden"},
      {{32, 48, 1, 3, 3, 300, 8}, "multiple"},    // heads do not divide dim
      {{30, 48, 1, 2, 2, 300, 8}, "odd"},         // head size 15
      {{32, 48, 1, 4, 3, 300, 8}, "n_kv_heads"},  // kv heads do not divide heads
      {{32, 48, 65, 2, 2, 300, 8}, "n_layers"},   // more than kMaxLayers
      {{100000, 48, 1, 2, 2, 300, 8}, "dim"},     // absurd
      {{32, 48, 1, 2, 2, 300, -8}, "seq_len"},   {{32, 48, 1, 2, 2, 0, 8}, "vocab"},
  };
  int i = 0;
  for (const Case& cs : cases) {
    const std::string p = dir.file("bad" + std::to_string(i++) + ".bin");
    write_raw(p, cs.h, 1000);
    const std::string e = load_error(p);
    EXPECT_NE(e.find(cs.expect), std::string::npos) << e;
  }
}

TEST(Checkpoint, NegativeVocabMeansSeparateClassifier) {
  TempDir dir;
  // dim 8, hidden 12, 1 layer, 2 heads, 1 kv head, vocab -5, seq 4.
  const uint64_t n = floats_of(8, 12, 1, 2, 1, 5, 4, false);
  const std::string p = dir.file("neg.bin");
  {
    std::ofstream f(p, std::ios::binary);
    const int32_t h[7] = {8, 12, 1, 2, 1, -5, 4};
    f.write(reinterpret_cast<const char*>(h), 28);
    for (uint64_t i = 0; i < n; i++) {
      const float v = i >= n - 40 ? 7.0f : 1.0f;  // the last 5 x 8 floats are wcls
      f.write(reinterpret_cast<const char*>(&v), 4);
    }
  }
  Checkpoint ck;
  std::string err;
  ASSERT_TRUE(load_checkpoint(p, &ck, &err)) << err;
  EXPECT_FALSE(ck.config.shared_classifier);
  EXPECT_EQ(ck.config.vocab_size, 5u);
  EXPECT_EQ(ck.wcls, n - 40);
  for (int i = 0; i < 40; i++) EXPECT_EQ(ck.data[ck.wcls + i], 7.0f);
  // The same file with a positive vocab has 160 extra bytes.
  EXPECT_EQ(checkpoint_bytes(ck.config), 28 + 4 * n);
}

TEST(Checkpoint, OtherFormatsAreNamed) {
  TempDir dir;
  // An llmwire image passed by mistake.
  {
    std::ofstream f(dir.file("x.img"), std::ios::binary);
    f.write("LLMWIMG\0", 8);
    f << std::string(600, '\0');
  }
  std::string e = load_error(dir.file("x.img"));
  EXPECT_NE(e.find("llmwire image"), std::string::npos) << e;
  // A tokenizer passed by mistake.
  std::string err;
  ASSERT_TRUE(synth_tokenizer(300, 1, dir.file("tok.bin"), &err)) << err;
  e = load_error(dir.file("tok.bin"));
  EXPECT_NE(e.find("tokenizer"), std::string::npos) << e;
}

TEST(Checkpoint, RealStories260K) {
  std::string why;
  const std::string models = llmwire::test::models_dir({"stories260K.bin", "tok512.bin"}, &why);
  if (models.empty()) GTEST_SKIP() << why;
  Checkpoint ck;
  std::string err;
  ASSERT_TRUE(load_checkpoint(models + "/stories260K.bin", &ck, &err)) << err;
  EXPECT_EQ(ck.config.dim, 64u);
  EXPECT_EQ(ck.config.hidden_dim, 172u);
  EXPECT_EQ(ck.config.n_layers, 5u);
  EXPECT_EQ(ck.config.n_heads, 8u);
  EXPECT_EQ(ck.config.n_kv_heads, 4u);
  EXPECT_EQ(ck.config.vocab_size, 512u);
  EXPECT_EQ(ck.config.seq_len, 512u);
  EXPECT_TRUE(ck.config.shared_classifier);
  EXPECT_EQ(ck.data.size(), 264128u);  // SOURCES.md
  // The tokenizer is not a checkpoint.
  const std::string e = load_error(models + "/tok512.bin");
  EXPECT_NE(e.find("tokenizer"), std::string::npos) << e;
}
