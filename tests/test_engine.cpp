// Forward-pass properties that must hold bit for bit: thread count, kernel choice and the
// split API never change a logit.
#include <gtest/gtest.h>

#include <cmath>

#include <cstring>
#include <random>

#include "engine/kernels.h"
#include "test_util.h"
#include "tools/host_model.h"
#include "tools/quantize.h"

using namespace llmwire;
using llmwire::test::TempDir;

namespace {

std::vector<float> run_logits(const std::string& img, uint32_t threads,
                              const std::vector<int32_t>& toks, bool reference = false,
                              KvType kv = KvType::kF32) {
  HostModel hm;
  RunOptions o;
  o.reference_kernels = reference;
  o.min_parallel_macs = 0;  // split every matmul, however small, across the threads
  o.kv_override = true;
  o.kv_type = kv;
  std::string err, hint;
  EXPECT_TRUE(hm.load(img, o, threads, &err, &hint)) << err;
  const uint32_t vocab = hm.model().config().vocab_size;
  std::vector<float> all;
  for (size_t i = 0; i < toks.size(); i++) {
    const float* l = nullptr;
    EXPECT_EQ(hm.forward(toks[i], (uint32_t)i, true, &l), Status::kOk);
    all.insert(all.end(), l, l + vocab);
  }
  return all;
}

bool bit_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * 4) == 0;
}

std::vector<int32_t> some_tokens(uint32_t vocab, size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> t{1};
  while (t.size() < n) t.push_back((int32_t)(rng() % vocab));
  return t;
}

struct Case {
  const char* name;
  ModelConfig cfg;
  WeightType quant;
};

std::vector<Case> cases() {
  using llmwire::test::small_config;
  return {
      {"gqa_q4", small_config(64, 172, 3, 8, 4, 320, 24), WeightType::kQ4},
      {"gqa_q8", small_config(64, 172, 3, 8, 4, 320, 24), WeightType::kQ8},
      {"sepcls_q4", small_config(96, 256, 2, 3, 3, 300, 24, false), WeightType::kQ4},
      {"mqa_f32", small_config(64, 100, 2, 4, 1, 300, 24), WeightType::kF32},
  };
}

}  // namespace

TEST(Engine, ThreadCountNeverChangesABit) {
  TempDir dir;
  for (const Case& c : cases()) {
    const std::string img =
        llmwire::test::make_image(dir, c.cfg, c.quant, 32, 11, KvType::kF32, c.name);
    const auto toks = some_tokens(c.cfg.vocab_size, 12, 3);
    const auto one = run_logits(img, 1, toks);
    EXPECT_TRUE(bit_equal(one, run_logits(img, 2, toks))) << c.name << " 2 threads";
    EXPECT_TRUE(bit_equal(one, run_logits(img, 4, toks))) << c.name << " 4 threads";
    EXPECT_TRUE(bit_equal(one, run_logits(img, 3, toks))) << c.name << " 3 threads";
  }
}

TEST(Engine, OptimizedKernelsMatchReferenceBitForBit) {
  TempDir dir;
  for (const Case& c : cases()) {
    const std::string img =
        llmwire::test::make_image(dir, c.cfg, c.quant, 32, 5, KvType::kF32, c.name);
    const auto toks = some_tokens(c.cfg.vocab_size, 10, 9);
    EXPECT_TRUE(bit_equal(run_logits(img, 1, toks, false), run_logits(img, 2, toks, true)))
        << c.name;
  }
}

TEST(Engine, KernelsBitIdenticalOnRandomMatrices) {
  std::mt19937 rng(42);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (DType dt : {DType::kQ4, DType::kQ8}) {
    for (uint32_t group : {8u, 32u, 64u}) {
      for (uint32_t cols : {8u, 31u, 100u, 288u}) {
        const uint32_t rows = 7, stride = row_stride_bytes(dt, cols, group);
        std::vector<uint8_t> w((size_t)rows * stride);
        std::vector<float> row(cols);
        for (uint32_t r = 0; r < rows; r++) {
          for (auto& v : row) v = nd(rng) * (r + 1);
          encode_row(row.data(), cols, dt, group, w.data() + (size_t)r * stride);
        }
        TensorView tv;
        tv.dtype = dt;
        tv.rows = rows;
        tv.cols = cols;
        tv.row_stride = stride;
        tv.data = w.data();
        const uint32_t groups = (cols + group - 1) / group;
        std::vector<float> x(cols);
        for (auto& v : x) v = nd(rng) * 3.0f;
        std::vector<int8_t> q((size_t)groups * group);
        std::vector<float> s(groups);
        std::vector<int32_t> qs(groups);
        quantize_input(x.data(), cols, group, q.data(), s.data(), qs.data());
        QuantizedInput qi{q.data(), s.data(), qs.data(), groups};
        MatmulInput in;
        in.xq = &qi;
        std::vector<float> a(rows), b(rows);
        matmul_reference(tv, group, in, a.data(), rows, 0, rows);
        matmul_optimized(tv, group, in, b.data(), rows, 0, rows);
        EXPECT_EQ(0, std::memcmp(a.data(), b.data(), rows * 4))
            << dtype_name(dt) << " g" << group << " c" << cols;
        // And the kernel computes what it claims: close to the float dot product.
        std::vector<float> deq(cols);
        for (uint32_t r = 0; r < rows; r++) {
          decode_row(w.data() + (size_t)r * stride, cols, dt, group, deq.data());
          double dot = 0, mag = 0;
          for (uint32_t j = 0; j < cols; j++) {
            dot += (double)deq[j] * x[j];
            mag += std::fabs((double)deq[j] * x[j]);
          }
          EXPECT_NEAR(a[r], dot, 0.02 * mag + 1e-4) << "row " << r;
        }
      }
    }
  }
}

TEST(Engine, SplitApiEqualsWholeModel) {
  TempDir dir;
  const ModelConfig c = llmwire::test::small_config(64, 172, 4, 8, 4, 320, 16);
  const std::string img = llmwire::test::make_image(dir, c, WeightType::kQ4);
  const auto toks = some_tokens(c.vocab_size, 8, 1);
  const auto whole = run_logits(img, 1, toks);
  for (uint32_t cut = 0; cut <= c.n_layers; cut++) {
    HostModel hm;
    std::string err, hint;
    ASSERT_TRUE(hm.load(img, RunOptions{}, 1, &err, &hint)) << err;
    Model& m = hm.model();
    std::vector<float> all, x(c.dim);
    for (size_t i = 0; i < toks.size(); i++) {
      ASSERT_EQ(m.embed(toks[i], x.data()), Status::kOk);
      ASSERT_EQ(m.run_layers(0, cut, (uint32_t)i, x.data()), Status::kOk);
      ASSERT_EQ(m.run_layers(cut, c.n_layers, (uint32_t)i, x.data()), Status::kOk);
      // Classifier rows in two slices, as if on two boards.
      const uint32_t mid = c.vocab_size / 3;
      ASSERT_EQ(m.head(x.data(), 0, mid, m.logits()), Status::kOk);
      ASSERT_EQ(m.head(x.data(), mid, c.vocab_size, m.logits()), Status::kOk);
      all.insert(all.end(), m.logits(), m.logits() + c.vocab_size);
    }
    EXPECT_TRUE(bit_equal(whole, all)) << "cut at " << cut;
  }
}

TEST(Engine, Fp16KvCacheIsCloseToFp32) {
  TempDir dir;
  const ModelConfig c = llmwire::test::small_config();
  const std::string img = llmwire::test::make_image(dir, c, WeightType::kQ8);
  const auto toks = some_tokens(c.vocab_size, 16, 2);
  const auto a = run_logits(img, 1, toks, false, KvType::kF32);
  const auto b = run_logits(img, 1, toks, false, KvType::kF16);
  ASSERT_EQ(a.size(), b.size());
  EXPECT_FALSE(bit_equal(a, b));  // fp16 really is used
  double worst = 0, mag = 0;
  for (size_t i = 0; i < a.size(); i++) {
    worst = std::max(worst, (double)std::fabs(a[i] - b[i]));
    mag = std::max(mag, (double)std::fabs(a[i]));
  }
  EXPECT_LT(worst, 0.02 * mag);
}

TEST(Engine, CountsWeightBytesReadPerToken) {
  TempDir dir;
  const ModelConfig c = llmwire::test::small_config(64, 172, 2, 8, 4, 320, 8, false);
  const std::string img = llmwire::test::make_image(dir, c, WeightType::kQ4);
  HostModel hm;
  std::string err, hint;
  ASSERT_TRUE(hm.load(img, RunOptions{}, 1, &err, &hint)) << err;
  // Expected: every layer tensor, final norm and classifier once, plus one embedding row.
  uint64_t expect = 0;
  const Image& im = hm.image();
  for (uint32_t i = 0; i < im.tensor_count(); i++) {
    const TensorView t = im.tensor(i);
    if (t.layer != kNoLayer || t.kind == TensorKind::kRmsFinal ||
        t.kind == TensorKind::kClassifier) {
      expect += t.bytes();
    }
    if (t.kind == TensorKind::kTokEmbedding) expect += t.row_stride;
  }
  hm.model().reset_counters();
  const float* l;
  ASSERT_EQ(hm.forward(5, 0, true, &l), Status::kOk);
  EXPECT_EQ(hm.model().weight_bytes_read(), expect);
}

TEST(Engine, ArenaTooSmallIsRefused) {
  TempDir dir;
  const std::string img =
      llmwire::test::make_image(dir, llmwire::test::small_config(), WeightType::kQ4);
  MappedFile f;
  std::string err;
  ASSERT_TRUE(f.open(img, &err));
  Image im;
  ASSERT_EQ(im.open(f.data(), f.size()), Status::kOk);
  const MemoryNeeds need = Model::memory_needs(im.info(), RunOptions{});
  // 16-byte aligned regions of exactly the stated sizes.
  std::vector<uint8_t> fast_mem(need.fast + 16), big_mem(need.big + 16);
  uint8_t* fb = fast_mem.data() + ((16 - ((uintptr_t)fast_mem.data() & 15)) & 15);
  uint8_t* bb = big_mem.data() + ((16 - ((uintptr_t)big_mem.data() & 15)) & 15);
  SerialExecutor ex;
  {
    Model m;
    Arena fast(MemoryRegion{fb, need.fast - 16}), big(MemoryRegion{bb, need.big});
    EXPECT_EQ(m.init(im, RunOptions{}, &fast, &big, &ex), Status::kArenaTooSmall);
  }
  {
    Model m;
    Arena fast(MemoryRegion{fb, need.fast}), big(MemoryRegion{bb, need.big - 16});
    EXPECT_EQ(m.init(im, RunOptions{}, &fast, &big, &ex), Status::kArenaTooSmall);
  }
  {
    Model m;
    Arena fast(MemoryRegion{fb, need.fast}), big(MemoryRegion{bb, need.big});
    EXPECT_EQ(m.init(im, RunOptions{}, &fast, &big, &ex), Status::kOk);
    // The KV cache lives in the big region, activations in the fast one.
    EXPECT_GE(need.big,
              KvCache::bytes(im.info().kv_type, im.info().layer_end - im.info().layer_begin,
                             im.info().config.seq_len, im.info().config.kv_dim(),
                             im.info().config.n_kv_heads));
    EXPECT_GE((const void*)m.x(), (const void*)fb);
    EXPECT_LT((const void*)m.x(), (const void*)(fb + need.fast));
  }
  RunOptions shorter;
  shorter.seq_len = 8;
  const MemoryNeeds less = Model::memory_needs(im.info(), shorter);
  EXPECT_LT(less.big, need.big);
  EXPECT_EQ(less.fast, need.fast);
}

TEST(Engine, EveryKernelGivesTheReferenceLogits) {
  TempDir dir;
  uint32_t n = 0;
  const Kernel* table = kernel_table(&n);
  for (const Case& c : cases()) {
    const std::string img =
        llmwire::test::make_image(dir, c.cfg, c.quant, 32, 13, KvType::kF32, c.name);
    const auto toks = some_tokens(c.cfg.vocab_size, 9, 4);
    const auto want = run_logits(img, 1, toks, true);
    for (uint32_t i = 0; i < n; i++) {
      if (!table[i].available()) continue;
      for (uint32_t threads : {1u, 3u}) {
        HostModel hm;
        RunOptions o;
        o.kernel = table[i].name;
        o.min_parallel_macs = 0;
        std::string err, hint;
        ASSERT_TRUE(hm.load(img, o, threads, &err, &hint)) << err;
        EXPECT_STREQ(hm.model().kernel_name(), table[i].name);
        std::vector<float> got;
        for (size_t t = 0; t < toks.size(); t++) {
          const float* l = nullptr;
          ASSERT_EQ(hm.forward(toks[t], (uint32_t)t, true, &l), Status::kOk);
          got.insert(got.end(), l, l + c.cfg.vocab_size);
        }
        EXPECT_TRUE(bit_equal(want, got))
            << c.name << " kernel " << table[i].name << " threads " << threads;
      }
    }
  }
}

TEST(Engine, UnknownKernelIsRefused) {
  TempDir dir;
  const std::string img =
      llmwire::test::make_image(dir, llmwire::test::small_config(), WeightType::kQ4);
  HostModel hm;
  RunOptions o;
  o.kernel = "no-such-kernel";
  std::string err, hint;
  EXPECT_FALSE(hm.load(img, o, 1, &err, &hint));
  EXPECT_NE(err.find("no-such-kernel"), std::string::npos) << err;
  EXPECT_NE(hint.find("reference"), std::string::npos) << hint;
}

// The batched prompt path (run_layers_batch) against token by token, position by position:
// chunk sizes that do and do not divide the prompt, 1 and 3 threads, every weight type.
TEST(Engine, BatchedPromptEqualsTokenByToken) {
  TempDir dir;
  for (const Case& c : cases()) {
    const std::string img =
        llmwire::test::make_image(dir, c.cfg, c.quant, 32, 17, KvType::kF32, c.name);
    const uint32_t np = 20;
    const auto toks = some_tokens(c.cfg.vocab_size, np, 6);
    const auto want = run_logits(img, 1, toks, true);
    for (uint32_t chunk : {2u, 7u, 32u}) {
      for (uint32_t threads : {1u, 3u}) {
        HostModel hm;
        RunOptions o;
        o.prompt_batch = chunk;
        o.min_parallel_macs = 0;
        std::string err, hint;
        ASSERT_TRUE(hm.load(img, o, threads, &err, &hint)) << err;
        Model& m = hm.model();
        const uint32_t dim = c.cfg.dim, vocab = c.cfg.vocab_size;
        std::vector<float> got;
        for (uint32_t p = 0; p < np; p += chunk) {
          const uint32_t k = std::min(chunk, np - p);
          for (uint32_t i = 0; i < k; i++) {
            ASSERT_EQ(m.embed(toks[p + i], m.batch_x() + (size_t)i * dim), Status::kOk);
          }
          ASSERT_EQ(m.run_layers_batch(0, c.cfg.n_layers, p, k, m.batch_x()), Status::kOk);
          for (uint32_t i = 0; i < k; i++) {
            ASSERT_EQ(m.head(m.batch_x() + (size_t)i * dim, 0, vocab, m.logits()), Status::kOk);
            got.insert(got.end(), m.logits(), m.logits() + vocab);
          }
        }
        EXPECT_TRUE(bit_equal(want, got)) << c.name << " chunk " << chunk << " threads " << threads;
      }
    }
    // And through feed_prompt, then token by token after it.
    HostModel hm;
    RunOptions o;
    o.prompt_batch = 8;
    std::string err, hint;
    ASSERT_TRUE(hm.load(img, o, 2, &err, &hint)) << err;
    ASSERT_EQ(hm.feed_prompt(toks.data(), np - 1), Status::kOk);
    const float* l = nullptr;
    ASSERT_EQ(hm.forward(toks[np - 1], np - 1, true, &l), Status::kOk);
    const uint32_t vocab = c.cfg.vocab_size;
    EXPECT_EQ(0, std::memcmp(l, want.data() + (size_t)(np - 1) * vocab, vocab * 4)) << c.name;
  }
}

TEST(KvCacheI8, RoundsEachHeadVectorToItsOwnScale) {
  // 1 layer, 2 positions, 2 KV heads of 4: int8 elements (4 vectors x 8) then 4 x 2 scales.
  EXPECT_EQ(KvCache::bytes(KvType::kI8, 1, 2, 8, 2), 4u * 8 + 4u * 2 * 4);
  EXPECT_EQ(KvCache::bytes(KvType::kF16, 1, 2, 8, 2), 4u * 8 * 2);
  EXPECT_EQ(KvCache::bytes(KvType::kF32, 1, 2, 8, 2), 4u * 8 * 4);
  std::vector<uint8_t> mem(KvCache::bytes(KvType::kI8, 1, 2, 8, 2) + 16);
  KvCache kv;
  kv.init(KvType::kI8, 1, 2, 8, 2, mem.data());
  // Head 0: max |x| = 2, so x * 127 / 2: 127, -63.5 -> -64 (ties to even), 31.75 -> 32, 0.
  // Head 1: all zero -> scale 0, elements 0.
  const float k[8] = {2.0f, -1.0f, 0.5f, 0.0f, 0, 0, 0, 0};
  const float v[8] = {0, 0, 0, 0, -3.0f, 1.0f, 0.02f, 3.0f};
  kv.store(0, 1, k, v);
  const int8_t* kq = static_cast<const int8_t*>(kv.key(0, 1));
  const int8_t* vq = static_cast<const int8_t*>(kv.value(0, 1));
  const int8_t want_k[8] = {127, -64, 32, 0, 0, 0, 0, 0};
  // v head 1: max 3: -127, 42.33 -> 42, 0.8467 -> 1, 127.
  const int8_t want_v[8] = {0, 0, 0, 0, -127, 42, 1, 127};
  for (int i = 0; i < 8; i++) {
    EXPECT_EQ(kq[i], want_k[i]) << i;
    EXPECT_EQ(vq[i], want_v[i]) << i;
  }
  EXPECT_EQ(kv.key_scales(0, 1)[0], 2.0f / 127.0f);
  EXPECT_EQ(kv.key_scales(0, 1)[1], 0.0f);
  EXPECT_EQ(kv.value_scales(0, 1)[0], 0.0f);
  EXPECT_EQ(kv.value_scales(0, 1)[1], 3.0f / 127.0f);
  // Position 0 is untouched by a store at position 1.
  for (int i = 0; i < 8; i++) EXPECT_EQ(static_cast<const int8_t*>(kv.key(0, 0))[i], 0);
}

TEST(Engine, Int8KvCacheIsCloseToFp32AndThreadIndependent) {
  TempDir dir;
  const ModelConfig c = llmwire::test::small_config();
  const std::string img = llmwire::test::make_image(dir, c, WeightType::kQ8);
  const auto toks = some_tokens(c.vocab_size, 16, 2);
  const auto a = run_logits(img, 1, toks, false, KvType::kF32);
  const auto b = run_logits(img, 1, toks, false, KvType::kI8);
  ASSERT_EQ(a.size(), b.size());
  EXPECT_FALSE(bit_equal(a, b));  // int8 really is used
  double worst = 0, mag = 0;
  for (size_t i = 0; i < a.size(); i++) {
    worst = std::max(worst, (double)std::fabs(a[i] - b[i]));
    mag = std::max(mag, (double)std::fabs(a[i]));
  }
  EXPECT_LT(worst, 0.05 * mag);
  // Attention heads split over threads, and the reference kernels: the same bits.
  EXPECT_TRUE(bit_equal(b, run_logits(img, 3, toks, false, KvType::kI8)));
  EXPECT_TRUE(bit_equal(b, run_logits(img, 1, toks, true, KvType::kI8)));
}
