// Helpers shared by the C++ tests: temp dirs, synthetic images, real-model discovery.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "tools/convert.h"
#include "tools/synth.h"

namespace llmwire::test {

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/llmwire-test-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() { std::system(("rm -rf '" + path + "'").c_str()); }
  std::string file(const std::string& name) const { return path + "/" + name; }
};

// Writes a random-weight checkpoint + tokenizer of `c` and converts it; returns the image path.
inline std::string make_image(const TempDir& dir, const ModelConfig& c, WeightType quant,
                              uint32_t group = 32, uint64_t seed = 7, KvType kv = KvType::kF32,
                              const std::string& name = "model") {
  const std::string ckpt = dir.file(name + ".ckpt"), tok = dir.file(name + ".tok");
  const std::string img = dir.file(name + "_" + std::to_string((int)quant) + ".img");
  std::string err;
  EXPECT_TRUE(synth_checkpoint(c, seed, ckpt, &err)) << err;
  EXPECT_TRUE(synth_tokenizer(c.vocab_size, seed, tok, &err)) << err;
  ConvertOptions o;
  o.checkpoint_path = ckpt;
  o.tokenizer_path = tok;
  o.output_path = img;
  o.quant = quant;
  o.group = group;
  o.kv = kv;
  ConvertReport report;
  EXPECT_TRUE(convert_checkpoint(o, &report, nullptr, &err)) << err;
  return img;
}

inline ModelConfig small_config(uint32_t dim = 64, uint32_t hidden = 172, uint32_t layers = 3,
                                uint32_t heads = 8, uint32_t kv_heads = 4, uint32_t vocab = 320,
                                uint32_t seq = 32, bool shared = true) {
  ModelConfig c;
  c.dim = dim;
  c.hidden_dim = hidden;
  c.n_layers = layers;
  c.n_heads = heads;
  c.n_kv_heads = kv_heads;
  c.vocab_size = vocab;
  c.seq_len = seq;
  c.shared_classifier = shared;
  return c;
}

// The folder of real weights ($LLMWIRE_MODELS), or "" with the reason in *why.
inline bool has_all(const std::string& dir, const std::vector<std::string>& need) {
  for (const std::string& f : need) {
    if (access((dir + "/" + f).c_str(), R_OK) != 0) return false;
  }
  return true;
}

// $LLMWIRE_MODELS when it has every file; else the repo's models/ folder when it does (the
// default model, stories260K + tok512, ships there); else "" with the reason in *why.
inline std::string models_dir(const std::vector<std::string>& need, std::string* why) {
  const char* env = std::getenv("LLMWIRE_MODELS");
  if (env && *env && has_all(env, need)) return env;
  const std::string shipped = std::string(LLMWIRE_SOURCE_DIR) + "/models";
  if (has_all(shipped, need)) return shipped;
  if (!env || !*env) {
    *why =
        "LLMWIRE_MODELS not set: point it at a folder with the real TinyStories files "
        "(e.g. ../shared/models, or run scripts/download_models.sh)";
  } else {
    *why = std::string("LLMWIRE_MODELS=") + env + " lacks a file this test needs (";
    for (const std::string& f : need) *why += " " + f;
    *why += " )";
  }
  return "";
}

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline std::vector<uint8_t> read_bytes(const std::string& path) {
  const std::string s = read_file(path);
  return std::vector<uint8_t>(s.begin(), s.end());
}

}  // namespace llmwire::test
