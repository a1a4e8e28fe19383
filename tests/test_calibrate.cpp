// Calibrated quantization (issue 10): statistics, weighted scales, GPTQ-style compensation,
// mixed precision, the header record, determinism, refusals; the quality targets on real
// weights ($LLMWIRE_MODELS, skipped with a message when absent).
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "engine/crc32c.h"
#include "engine/image.h"
#include "test_util.h"
#include "tools/calibrate.h"
#include "tools/image_writer.h"
#include "tools/perplexity.h"
#include "tools/planner.h"
#include "tools/quantize.h"

using namespace llmwire;
using llmwire::test::TempDir;

namespace {

const char* kStories =
    "Once upon a time, there was a little girl named Lily. She loved to play in the park with "
    "her ball. One day, she saw a big dog. The dog was friendly and wanted to play.\n\n"
    "Tom had a red car. He liked to drive it around the house. His mom said, \"Be careful, "
    "Tom!\" Tom smiled and said, \"I will, mom.\" They were very happy.\n\n"
    "The sun was shining and the birds were singing. A small bunny hopped in the grass. It found "
    "a carrot and ate it all up. Then it went home to sleep.\n";

void write_text(const std::string& path, const std::string& s) {
  FILE* f = fopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  if (!s.empty()) {
    ASSERT_EQ(fwrite(s.data(), 1, s.size(), f), s.size());
  }
  fclose(f);
}

// A synthetic model (vocabulary 512: every printable ASCII character is a piece) with its
// checkpoint and tokenizer in `dir`.
struct Synthetic {
  std::string ckpt, tok;
  explicit Synthetic(const TempDir& dir, uint32_t seed = 5) {
    const ModelConfig c = llmwire::test::small_config(64, 172, 2, 8, 4, 512, 64, seed % 2 == 1);
    ckpt = dir.file("m" + std::to_string(seed) + ".ckpt");
    tok = dir.file("m" + std::to_string(seed) + ".tok");
    std::string err;
    EXPECT_TRUE(synth_checkpoint(c, seed, ckpt, &err)) << err;
    EXPECT_TRUE(synth_tokenizer(c.vocab_size, seed, tok, &err)) << err;
  }
};

// The synthetic model loaded, with kStories tokenized as its calibration text.
struct SyntheticCalib {
  Checkpoint ck;
  TokenizerBlob tok;
  CalibText ct;
  explicit SyntheticCalib(const TempDir& dir) {
    const Synthetic m(dir);
    std::string err;
    EXPECT_TRUE(load_checkpoint(m.ckpt, &ck, &err)) << err;
    EXPECT_TRUE(load_tokenizer_file(m.tok, ck.config.vocab_size, &tok, &err)) << err;
    const std::string text = dir.file("t.txt");
    write_text(text, kStories);
    EXPECT_TRUE(load_calibration_text(text, tok, ck.config.seq_len, 100000, &ct, &err)) << err;
  }
};

bool convert(const std::string& ckpt, const std::string& tok, const std::string& out,
             const std::string& calib, bool gptq, uint64_t budget, std::string* err,
             unsigned threads = 0, ConvertReport* report = nullptr) {
  ConvertOptions o;
  o.checkpoint_path = ckpt;
  o.tokenizer_path = tok;
  o.output_path = out;
  o.quant = WeightType::kQ4;
  o.calib_path = calib;
  o.error_compensation = gptq;
  o.budget_bytes = budget;
  o.threads = threads;
  ConvertReport r;
  const bool ok = convert_checkpoint(o, report ? report : &r, nullptr, err);
  return ok;
}

double weighted_err(const std::vector<float>& w, const std::vector<double>& imp, DType dt,
                    const std::vector<uint8_t>& row) {
  std::vector<float> d(w.size());
  decode_row(row.data(), (uint32_t)w.size(), dt, 32, d.data());
  double e = 0;
  for (size_t j = 0; j < w.size(); j++) e += imp[j] * ((double)w[j] - d[j]) * ((double)w[j] - d[j]);
  return e;
}

}  // namespace

// The weighted scale search lowers the weighted error it is asked to minimise (compared with
// the plain search, which ignores the importance), over many random rows.
TEST(CalibratedQuantize, ImportanceWeightedScalesLowerTheWeightedError) {
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::uniform_real_distribution<double> ud(0.0, 1.0);
  const uint32_t cols = 96;
  for (DType dt : {DType::kQ4, DType::kQ8}) {
    double plain = 0, weighted = 0;
    for (int r = 0; r < 300; r++) {
      std::vector<float> w(cols);
      std::vector<double> imp(cols);
      for (uint32_t j = 0; j < cols; j++) {
        w[j] = nd(rng);
        const double u = ud(rng);
        imp[j] = u * u * u * u * 100.0;  // a few columns matter much more than the rest
      }
      std::vector<uint8_t> a(row_stride_bytes(dt, cols, 32)), b(a.size());
      encode_row(w.data(), cols, dt, 32, a.data());
      encode_row(w.data(), cols, dt, 32, b.data(), imp.data());
      plain += weighted_err(w, imp, dt, a);
      weighted += weighted_err(w, imp, dt, b);
    }
    EXPECT_LT(weighted, plain * (dt == DType::kQ4 ? 0.97 : 0.999)) << dtype_name(dt);
  }
}

// GPTQ-style compensation lowers the output error E||(W - Ŵ) x||² = eᵀ H e for correlated
// inputs, compared with rounding each weight on its own.
TEST(CalibratedQuantize, ErrorCompensationLowersTheOutputError) {
  std::mt19937 rng(9);
  std::normal_distribution<double> nd(0.0, 1.0);
  const uint32_t n = 64, T = 400;
  // Correlated inputs: x = A z.
  std::vector<double> a((size_t)n * n), h((size_t)n * n, 0.0);
  for (double& v : a) v = nd(rng) * 0.3;
  for (uint32_t i = 0; i < n; i++) a[(size_t)i * n + i] += 1.0;
  for (uint32_t t = 0; t < T; t++) {
    std::vector<double> z(n), x(n, 0.0);
    for (double& v : z) v = nd(rng);
    for (uint32_t i = 0; i < n; i++)
      for (uint32_t k = 0; k < n; k++) x[i] += a[(size_t)i * n + k] * z[k];
    for (uint32_t i = 0; i < n; i++)
      for (uint32_t k = 0; k < n; k++) h[(size_t)i * n + k] += x[i] * x[k] / T;
  }
  std::vector<uint32_t> order(n);
  for (uint32_t j = 0; j < n; j++) order[j] = (j * 37u) % n;  // any permutation
  for (const uint32_t* ord : {(const uint32_t*)nullptr, (const uint32_t*)order.data()}) {
    std::vector<double> u;
    ASSERT_TRUE(gptq_factor(h.data(), n, ord, 0.01, &u));
    double plain = 0, comp = 0;
    for (int r = 0; r < 100; r++) {
      std::vector<float> w(n);
      for (float& v : w) v = (float)nd(rng);
      std::vector<uint8_t> p(row_stride_bytes(DType::kQ4, n, 32)), g(p.size());
      encode_row(w.data(), n, DType::kQ4, 32, p.data());
      encode_row_gptq(w.data(), n, DType::kQ4, 32, u.data(), ord, ord ? h.data() : nullptr, nullptr,
                      g.data());
      for (const auto* row : {&p, &g}) {
        std::vector<float> d(n);
        decode_row(row->data(), n, DType::kQ4, 32, d.data());
        std::vector<double> e(n);
        for (uint32_t j = 0; j < n; j++) e[j] = (double)w[j] - d[j];
        double f = 0;
        for (uint32_t i = 0; i < n; i++)
          for (uint32_t k = 0; k < n; k++) f += e[i] * h[(size_t)i * n + k] * e[k];
        (row == &p ? plain : comp) += f;
      }
    }
    EXPECT_LT(comp, 0.9 * plain) << (ord ? "act order" : "column order");
  }
}

TEST(Calibration, StatisticsAreMeanSquaresOfTheLayerInputs) {
  TempDir dir;
  SyntheticCalib sc(dir);
  ASSERT_FALSE(testing::Test::HasFailure());
  const Checkpoint& ck = sc.ck;
  const CalibText& ct = sc.ct;
  std::string err;
  EXPECT_EQ(ct.text_crc, crc32c(kStories, strlen(kStories)));
  EXPECT_EQ(ct.chunks.size() >= 3, true);
  for (const auto& c : ct.chunks) {
    EXPECT_EQ(c[0], 1);  // BOS
    EXPECT_LE(c.size(), ck.config.seq_len);
  }
  CalibStats st;
  ASSERT_TRUE(collect_calibration(ck, ck.config, ct, true, 2, nullptr, &st, &err)) << err;
  EXPECT_EQ(st.tokens, ct.tokens);
  ASSERT_EQ(st.msq.size(), 2u * kCalibSitesPerLayer + 1);
  // The attention input of layer 0 is rmsnorm(embedding) * rms_att: recompute its mean squares
  // independently (double) and compare.
  const uint32_t d = ck.config.dim;
  std::vector<double> want(d, 0.0);
  for (const auto& c : ct.chunks) {
    for (int32_t t : c) {
      const float* e = ck.ptr(ck.tok_emb + (size_t)t * d);
      double ss = 0;
      for (uint32_t j = 0; j < d; j++) ss += (double)e[j] * e[j];
      const double r = 1.0 / std::sqrt(ss / d + 1e-5);
      for (uint32_t j = 0; j < d; j++) {
        const double v = ck.ptr(ck.rms_att)[j] * r * e[j];
        want[j] += v * v / (double)ct.tokens;
      }
    }
  }
  const std::vector<double>& got = st.site_msq(0, CalibSite::kAttnIn);
  for (uint32_t j = 0; j < d; j++) EXPECT_NEAR(got[j], want[j], 1e-4 * want[j] + 1e-9) << j;
  // The Gram matrix's diagonal is the mean squares.
  const std::vector<double>* g = st.site_gram(0, CalibSite::kFfnHidden);
  ASSERT_NE(g, nullptr);
  const std::vector<double>& mh = st.site_msq(0, CalibSite::kFfnHidden);
  for (size_t j = 0; j < mh.size(); j++)
    EXPECT_NEAR((*g)[j * mh.size() + j], mh[j], 1e-12 + 1e-9 * mh[j]);
}

// Sequential compensation's statistics: with the f32 model as the "variant", x̃ = x, so both
// moments equal the plain Gram matrix at every site; with one matrix of layer 1 changed, the
// sites it feeds see other inputs while the earlier sites do not.
TEST(Calibration, PairedStatisticsFollowTheVariantFromWhereItDiffers) {
  TempDir dir;
  SyntheticCalib sc(dir);
  ASSERT_FALSE(testing::Test::HasFailure());
  const Checkpoint& ck = sc.ck;
  const CalibText& ct = sc.ct;
  std::string err;
  CalibStats st;
  ASSERT_TRUE(collect_calibration(ck, ck.config, ct, true, 1, nullptr, &st, &err)) << err;
  SiteActivations ref;
  ASSERT_TRUE(record_sites(ck, ck.config, ct, 1, &ref, &err)) << err;
  ASSERT_EQ(ref.site.size(), st.msq.size());
  const CalibWeights same = CalibWeights::of(ck);
  std::vector<double> g, x;
  for (size_t site : {size_t(0), size_t(3), size_t(6)}) {
    ASSERT_TRUE(collect_site_pair(ck, ck.config, ct, same, site, ref, 2, &g, &x, &err)) << err;
    ASSERT_EQ(g.size(), st.gram[site].size());
    for (size_t k = 0; k < g.size(); k++) {
      EXPECT_NEAR(g[k], st.gram[site][k], 1e-9 * (1 + std::fabs(st.gram[site][k]))) << site;
      EXPECT_EQ(g[k], x[k]) << site;
    }
  }
  // wo of layer 1 scaled by 1.5: layer 1's attention output (site 5) is its input, unchanged;
  // layer 1's FFN input (site 6) changes, and then x̃ differs from x there.
  const uint32_t d = ck.config.dim;
  std::vector<float> wo(ck.ptr(ck.wo + (size_t)d * d), ck.ptr(ck.wo + (size_t)d * d) + d * d);
  for (float& v : wo) v *= 1.5f;
  CalibWeights var = same;
  var.layers[1].wo = wo.data();
  ASSERT_TRUE(collect_site_pair(ck, ck.config, ct, var, 5, ref, 1, &g, &x, &err)) << err;
  for (size_t k = 0; k < g.size(); k++) EXPECT_EQ(g[k], x[k]);
  ASSERT_TRUE(collect_site_pair(ck, ck.config, ct, var, 6, ref, 1, &g, &x, &err)) << err;
  double dg = 0, dx = 0;
  for (size_t k = 0; k < g.size(); k++) {
    dg += std::fabs(g[k] - st.gram[6][k]);
    dx += std::fabs(g[k] - x[k]);
  }
  EXPECT_GT(dg, 1e-3) << "the changed wo must change the FFN input";
  EXPECT_GT(dx, 1e-3) << "x̃ and x differ after the change";
}

// The classifier rows' metrics E[p_v x xᵀ] sum over the vocabulary to the classifier input's
// Gram matrix (the probabilities sum to 1; tokens below 1e-9 are left out), and a row's
// block weights positions by that token's probability, so blocks differ.
TEST(Calibration, ClassifierRowMetricsAreProbabilityWeightedGrams) {
  TempDir dir;
  SyntheticCalib sc(dir);
  ASSERT_FALSE(testing::Test::HasFailure());
  const Checkpoint& ck = sc.ck;
  const CalibText& ct = sc.ct;
  std::string err;
  CalibStats st;
  ASSERT_TRUE(collect_calibration(ck, ck.config, ct, true, 2, nullptr, &st, &err)) << err;
  const uint32_t d = ck.config.dim, V = ck.config.vocab_size;
  ASSERT_EQ(st.cls_gram.size(), (size_t)V * d * d);
  const std::vector<double>& g = st.gram.back();
  std::vector<double> sum((size_t)d * d, 0.0);
  for (uint32_t v = 0; v < V; v++) {
    for (size_t k = 0; k < sum.size(); k++) sum[k] += st.cls_gram[(size_t)v * d * d + k];
  }
  for (size_t k = 0; k < sum.size(); k++) {
    const double scale = std::sqrt(g[(k / d) * d + k / d] * g[(k % d) * d + k % d]);
    EXPECT_NEAR(sum[k], g[k], 1e-6 * scale + 1e-12) << k;
  }
  double lo = 1e300, hi = 0;
  for (uint32_t v = 0; v < V; v++) {
    const double t = st.cls_gram[(size_t)v * d * d];  // (0, 0) entry of each block
    lo = std::min(lo, t);
    hi = std::max(hi, t);
  }
  EXPECT_GT(hi, 4 * lo);
  // Without Gram matrices (no --gptq) nothing is collected.
  CalibStats st2;
  ASSERT_TRUE(collect_calibration(ck, ck.config, ct, false, 2, nullptr, &st2, &err)) << err;
  EXPECT_TRUE(st2.cls_gram.empty());
}

// GPTQ's single-level descent never leaves the output error eᵀHe worse than GPTQ alone would:
// on random rows with correlated inputs it is lower than plain rounding by a wide margin and the
// descent is a local optimum: no single level moved by ±1 (within range) lowers it further.
TEST(CalibratedQuantize, ErrorCompensationEndsAtALocalOptimumOfTheOutputError) {
  std::mt19937 rng(11);
  std::normal_distribution<double> nd(0.0, 1.0);
  const uint32_t n = 64, T = 300;
  std::vector<double> a((size_t)n * n), h((size_t)n * n, 0.0);
  for (double& v : a) v = nd(rng) * 0.3;
  for (uint32_t i = 0; i < n; i++) a[(size_t)i * n + i] += 1.0;
  for (uint32_t t = 0; t < T; t++) {
    std::vector<double> z(n), x(n, 0.0);
    for (double& v : z) v = nd(rng);
    for (uint32_t i = 0; i < n; i++)
      for (uint32_t k = 0; k < n; k++) x[i] += a[(size_t)i * n + k] * z[k];
    for (uint32_t i = 0; i < n; i++)
      for (uint32_t k = 0; k < n; k++) h[(size_t)i * n + k] += x[i] * x[k] / T;
  }
  std::vector<uint32_t> order(n);
  for (uint32_t j = 0; j < n; j++) order[j] = (j * 37u) % n;
  std::vector<double> u;
  ASSERT_TRUE(gptq_factor(h.data(), n, order.data(), 0.01, &u));
  auto objective = [&](const std::vector<float>& w, const std::vector<float>& dq) {
    double f = 0;
    for (uint32_t i = 0; i < n; i++)
      for (uint32_t k = 0; k < n; k++)
        f += ((double)dq[i] - w[i]) * h[(size_t)i * n + k] * ((double)dq[k] - w[k]);
    return f;
  };
  for (int r = 0; r < 20; r++) {
    std::vector<float> w(n);
    for (float& v : w) v = (float)nd(rng);
    std::vector<uint8_t> row(row_stride_bytes(DType::kQ4, n, 32));
    encode_row_gptq(w.data(), n, DType::kQ4, 32, u.data(), order.data(), h.data(), nullptr,
                    row.data());
    std::vector<float> dq(n);
    decode_row(row.data(), n, DType::kQ4, 32, dq.data());
    const double f = objective(w, dq);
    for (uint32_t j = 0; j < n; j++) {
      const float s = half_to_float(load_u16(row.data() + 2 * (j / 32)));
      for (int d = -1; d <= 1; d += 2) {
        const float q = dq[j] / s + (float)d;
        if (q < -8 || q > 7) continue;
        std::vector<float> moved(dq);
        moved[j] = s * q;
        EXPECT_GE(objective(w, moved), f * (1 - 1e-9)) << "row " << r << " col " << j;
      }
    }
  }
}

TEST(Calibration, ImageRecordsTheMethodAndRunsAndIsDeterministic) {
  TempDir dir;
  Synthetic m(dir);
  const std::string text = dir.file("t.txt"), other = dir.file("o.txt");
  write_text(text, kStories);
  write_text(other, std::string(kStories) + "\nThe end of the story was happy for everyone.\n");
  std::string err;
  const std::string a = dir.file("a.img"), b = dir.file("b.img"), c = dir.file("c.img"),
                    p = dir.file("p.img");
  ASSERT_TRUE(convert(m.ckpt, m.tok, a, text, true, 0, &err, 1)) << err;
  ASSERT_TRUE(convert(m.ckpt, m.tok, b, text, true, 0, &err, 2)) << err;
  ASSERT_TRUE(convert(m.ckpt, m.tok, c, other, true, 0, &err, 2)) << err;
  ASSERT_TRUE(convert(m.ckpt, m.tok, p, "", false, 0, &err)) << err;
  const auto ba = llmwire::test::read_bytes(a), bb = llmwire::test::read_bytes(b),
             bc = llmwire::test::read_bytes(c), bp = llmwire::test::read_bytes(p);
  EXPECT_EQ(ba, bb) << "same inputs, another thread count: the bytes must not change";
  EXPECT_NE(ba, bc) << "another calibration text must give other bytes";
  EXPECT_EQ(ba.size(), bp.size()) << "calibration changes values, not sizes";
  ImageInfo ia, ip;
  ASSERT_EQ(decode_header(ba.data(), ba.size(), &ia), Status::kOk);
  ASSERT_EQ(decode_header(bp.data(), bp.size(), &ip), Status::kOk);
  EXPECT_EQ(ia.quant_method, (uint32_t)(kQuantImportance | kQuantErrorComp));
  EXPECT_EQ(ia.calib_crc, crc32c(kStories, strlen(kStories)));
  EXPECT_GT(ia.calib_tokens, 64u);
  // At the offsets docs/FORMAT.md gives, the rest of the reserved bytes still zero.
  EXPECT_EQ(load_u32(ba.data() + 156), 3u);
  EXPECT_EQ(load_u32(ba.data() + 160), ia.calib_tokens);
  EXPECT_EQ(load_u32(ba.data() + 164), crc32c(kStories, strlen(kStories)));
  for (int i = 168; i < 252; i++) EXPECT_EQ(ba[i], 0) << "reserved byte " << i;
  EXPECT_EQ(ip.quant_method, 0u);
  EXPECT_EQ(ip.calib_tokens, 0u);
  // It runs like any image.
  HostModel hm;
  std::string hint;
  ASSERT_TRUE(hm.load(a, RunOptions{}, 1, &err, &hint)) << err;
  const float* logits = nullptr;
  ASSERT_EQ(hm.forward(1, 0, true, &logits), Status::kOk);
  for (uint32_t i = 0; i < 512; i++) ASSERT_TRUE(std::isfinite(logits[i]));
}

TEST(Calibration, MixedPrecisionStaysWithinTheBudget) {
  TempDir dir;
  Synthetic m(dir, 6);  // separate classifier
  const std::string text = dir.file("t.txt");
  write_text(text, kStories);
  std::string err;
  const std::string q4 = dir.file("q4.img"), mx = dir.file("mx.img");
  ASSERT_TRUE(convert(m.ckpt, m.tok, q4, text, false, 0, &err)) << err;
  const uint64_t base = llmwire::test::read_bytes(q4).size(), budget = base * 115 / 100;
  ConvertReport r;
  ASSERT_TRUE(convert(m.ckpt, m.tok, mx, text, false, budget, &err, 0, &r)) << err;
  const auto bytes = llmwire::test::read_bytes(mx);
  EXPECT_LE(bytes.size(), budget);
  EXPECT_GT(bytes.size(), base);
  EXPECT_GT(r.calib.q8_matrices, 0u);
  EXPECT_LT(r.calib.q8_matrices, r.calib.matrices);
  Image img;
  ASSERT_EQ(img.open(bytes.data(), bytes.size(), true), Status::kOk);
  EXPECT_TRUE(img.info().quant_method & kQuantMixed);
  uint32_t q8 = 0;
  for (uint32_t i = 0; i < img.tensor_count(); i++) q8 += img.tensor(i).dtype == DType::kQ8;
  EXPECT_EQ(q8, r.calib.q8_matrices);
  // Without the mixed bit the reader refuses a Q8 matrix in a Q4 image.
  std::vector<uint8_t> bad = bytes;
  store_u32(bad.data() + hdr::kQuantMethod, kQuantImportance);
  store_u32(bad.data() + hdr::kHeaderCrc, crc32c(bad.data(), hdr::kHeaderCrc));
  Image img2;
  EXPECT_EQ(img2.open(bad.data(), bad.size(), true), Status::kBadTensorShape);
  // A budget below the all-Q4 image is refused with the size it needs.
  EXPECT_FALSE(convert(m.ckpt, m.tok, dir.file("x.img"), text, false, base - 1, &err));
  EXPECT_NE(err.find(std::to_string(base)), std::string::npos) << err;
}

// --fit: the Q4/Q8 choice is bounded by what the planner fits on the boards, not by a byte
// count. A wide vocabulary makes the all-Q8 image too big for one esp32s3-8mb board while the
// all-Q4 one fits: the embedding (most of the bytes) must stay Q4, the layers can go Q8.
TEST(CalibFit, MixedPrecisionFitsTheBoardsThePlannerSays) {
  TempDir dir;
  const ModelConfig c = llmwire::test::small_config(64, 172, 1, 8, 4, 86016, 64, true);
  const std::string ckpt = dir.file("wide.ckpt"), tokf = dir.file("wide.tok");
  std::string err;
  ASSERT_TRUE(synth_checkpoint(c, 3, ckpt, &err)) << err;
  ASSERT_TRUE(synth_tokenizer(c.vocab_size, 3, tokf, &err)) << err;
  const std::string text = dir.file("t.txt");
  write_text(text, std::string(kStories).substr(0, 120));
  ConvertOptions o;
  o.checkpoint_path = ckpt;
  o.tokenizer_path = tokf;
  o.output_path = dir.file("fit.img");
  o.quant = WeightType::kQ4;
  o.calib_path = text;
  o.fit_board = "esp32s3-8mb";
  o.fit_boards = 1;
  ConvertReport r;
  ASSERT_TRUE(convert_checkpoint(o, &r, nullptr, &err)) << err;
  BoardProfile board;
  ASSERT_TRUE(find_profile("esp32s3-8mb", &board));
  const auto bytes = llmwire::test::read_bytes(o.output_path);
  Image img;
  ASSERT_EQ(img.open(bytes.data(), bytes.size(), true), Status::kOk);
  ModelSizes sizes;
  ASSERT_TRUE(sizes_from_image(img, &sizes, &err)) << err;
  PlanRequest req;
  req.boards = 1;
  EXPECT_TRUE(make_plan(sizes, board, req).fits);
  EXPECT_GT(bytes.size() * 2, board.partition_bytes);  // the limit bound the choice
  uint32_t q8 = 0;
  for (uint32_t i = 0; i < img.tensor_count(); i++) {
    const TensorView t = img.tensor(i);
    if (t.kind == TensorKind::kTokEmbedding) {
      EXPECT_EQ(t.dtype, DType::kQ4);
    }
    q8 += t.dtype == DType::kQ8;
  }
  EXPECT_GT(q8, 0u);
  EXPECT_EQ(q8, r.calib.q8_matrices);
  // An unknown profile and --fit with --budget are refused, naming what to do.
  o.fit_board = "esp32-nope";
  EXPECT_FALSE(convert_checkpoint(o, &r, nullptr, &err));
  EXPECT_NE(err.find("esp32s3-8mb"), std::string::npos) << err;
  o.fit_board = "esp32s3-8mb";
  o.budget_bytes = 1u << 30;
  EXPECT_FALSE(convert_checkpoint(o, &r, nullptr, &err));
  EXPECT_NE(err.find("give one of them"), std::string::npos) << err;
}

TEST(Calibration, BadInputIsRefusedWithAClearMessage) {
  TempDir dir;
  Synthetic m(dir);
  std::string err;
  const std::string out = dir.file("out.img");
  struct Case {
    const char* what;
    std::string content;
    const char* expect;
  };
  std::string binary(4096, '\0');
  for (size_t i = 0; i < binary.size(); i++) binary[i] = (char)((i * 7919u) >> 3);
  std::string greek;
  for (int i = 0; i < 300; i++) greek += "Μια φορά κι έναν καιρό ζούσε ένα κορίτσι. ";
  const Case cases[] = {
      {"empty", "", "is empty"},
      {"blank", "\n\n   \n\t\n", "is empty"},
      {"binary", binary, "does not look like text"},
      {"another vocabulary", greek, "not in this model's vocabulary"},
      {"too short", "Hi.", "too short"},
  };
  for (const Case& c : cases) {
    const std::string path = dir.file(std::string("bad_") + std::to_string(&c - cases) + ".txt");
    write_text(path, c.content);
    err.clear();
    EXPECT_FALSE(convert(m.ckpt, m.tok, out, path, false, 0, &err)) << c.what;
    EXPECT_NE(err.find(c.expect), std::string::npos) << c.what << ": " << err;
    EXPECT_NE(err.find(path), std::string::npos) << c.what << ": says which file: " << err;
  }
  // Huge: more than 64 MB (a sparse file of spaces and a story is still refused for its size).
  const std::string huge = dir.file("huge.txt");
  {
    FILE* f = fopen(huge.c_str(), "wb");
    ASSERT_NE(f, nullptr);
    std::string block(1 << 20, ' ');
    for (int i = 0; i < 65; i++) fwrite(block.data(), 1, block.size(), f);
    fputs(kStories, f);
    fclose(f);
  }
  EXPECT_FALSE(convert(m.ckpt, m.tok, out, huge, false, 0, &err));
  EXPECT_NE(err.find("larger than 64 MB"), std::string::npos) << err;
  EXPECT_FALSE(convert(m.ckpt, m.tok, out, dir.file("missing.txt"), false, 0, &err));
  EXPECT_NE(err.find("cannot open calibration text"), std::string::npos) << err;
  // Options that need calibration, or a quantized image.
  EXPECT_FALSE(convert(m.ckpt, m.tok, out, "", true, 0, &err));
  EXPECT_NE(err.find("--calib"), std::string::npos) << err;
  EXPECT_FALSE(convert(m.ckpt, m.tok, out, "", false, 1 << 20, &err));
  EXPECT_NE(err.find("--calib"), std::string::npos) << err;
  EXPECT_EQ(access(out.c_str(), F_OK), -1) << "no image is left behind by a refusal";
}

// ---- Real weights: the issue's targets -------------------------------------------------

namespace {

struct RealCalib : ::testing::Test {
  std::string models, eval_dir;
  TempDir dir;
  void SetUp() override {
    std::string why;
    models = llmwire::test::models_dir({"stories260K.bin", "tok512.bin"}, &why);
    if (models.empty()) GTEST_SKIP() << why;
    const char* e = std::getenv("LLMWIRE_EVAL_DIR");
    eval_dir = e && *e ? e : models + "/../eval";
    if (access((eval_dir + "/calib_stories260K.txt").c_str(), R_OK) != 0 ||
        access((eval_dir + "/stories260K_samples.txt").c_str(), R_OK) != 0) {
      GTEST_SKIP() << "no calib_stories260K.txt / stories260K_samples.txt in " << eval_dir
                   << " (set LLMWIRE_EVAL_DIR)";
    }
  }
  std::string make(const std::string& name, WeightType q, bool calib, bool gptq, uint64_t budget,
                   uint32_t group = 32) {
    ConvertOptions o;
    o.checkpoint_path = models + "/stories260K.bin";
    o.tokenizer_path = models + "/tok512.bin";
    o.output_path = dir.file(name);
    o.quant = q;
    if (calib) o.calib_path = eval_dir + "/calib_stories260K.txt";  // never the eval text
    o.error_compensation = gptq;
    o.budget_bytes = budget;
    o.group = group;
    ConvertReport r;
    std::string err;
    EXPECT_TRUE(convert_checkpoint(o, &r, nullptr, &err)) << err;
    return o.output_path;
  }
  PerplexityResult score(const std::string& img, const std::string& ref) {
    HostModel m, f;
    std::string err, hint;
    EXPECT_TRUE(m.load(img, RunOptions{}, 2, &err, &hint)) << err;
    EXPECT_TRUE(f.load(ref, RunOptions{}, 2, &err, &hint)) << err;
    PerplexityResult r;
    const std::string text = llmwire::test::read_file(eval_dir + "/stories260K_samples.txt");
    EXPECT_TRUE(evaluate_perplexity(m, &f, text, &r, &err)) << err;
    std::printf("  %-14s ppl %.4f (%+.2f%% over f32)  KL %.4f  top-1 %.2f%%  %zu bytes\n",
                img.substr(img.rfind('/') + 1).c_str(), r.perplexity,
                100 * (r.perplexity / r.ref_perplexity - 1), r.mean_kl, 100 * r.top1_agreement,
                llmwire::test::read_bytes(img).size());
    return r;
  }
};

}  // namespace

// Importance-weighted scales alone (no compensation) beat plain q4 at the same bytes on all
// three measures of the eval text.
TEST_F(RealCalib, CalibratedQ4BeatsPlainQ4AtTheSameBytes) {
  const std::string f32 = make("f32.img", WeightType::kF32, false, false, 0);
  const std::string plain = make("q4.img", WeightType::kQ4, false, false, 0);
  const std::string imp = make("q4imp.img", WeightType::kQ4, true, false, 0);
  EXPECT_EQ(llmwire::test::read_bytes(imp).size(), llmwire::test::read_bytes(plain).size());
  const PerplexityResult p = score(plain, f32), i = score(imp, f32);
  EXPECT_LT(i.perplexity, p.perplexity);
  EXPECT_LT(i.mean_kl, p.mean_kl);
  EXPECT_GT(i.top1_agreement, p.top1_agreement);
}

// The issue's q4 target on the eval text (calibrated on calib_stories260K.txt only): q4
// `--calib --gptq` at the same bytes as plain q4 within +6% perplexity and KL <= 0.05, better
// than plain q4 on all three measures (measured +4.60%, KL 0.0447).
TEST_F(RealCalib, IssueTargets) {
  const std::string f32 = make("f32.img", WeightType::kF32, false, false, 0);
  const std::string plain = make("q4.img", WeightType::kQ4, false, false, 0);
  const std::string gptq = make("q4gptq.img", WeightType::kQ4, true, true, 0);
  const uint64_t q4_bytes = llmwire::test::read_bytes(plain).size();
  EXPECT_EQ(llmwire::test::read_bytes(gptq).size(), q4_bytes);
  const PerplexityResult p = score(plain, f32), g = score(gptq, f32);
  EXPECT_LT(g.perplexity, p.perplexity);
  EXPECT_LT(g.mean_kl, p.mean_kl);
  EXPECT_GT(g.top1_agreement, p.top1_agreement);
  EXPECT_LE(g.perplexity / g.ref_perplexity - 1, 0.06);
  EXPECT_LE(g.mean_kl, 0.05);
}

// The issue's mixed-precision target: at <= 1.15x the plain q4 bytes, perplexity <= +3% over
// f32 on the eval text. The image is made as docs/QUANTIZATION.md says: group 16 (chosen on
// the calibration halves), the rest of the budget on Q8 matrices. Measured +2.76%, KL 0.0256,
// top-1 92.63% (the group-32 mixed image: +3.00%, 0.0296, 91.89%).
TEST_F(RealCalib, MixedPrecisionTarget) {
  const std::string f32 = make("f32.img", WeightType::kF32, false, false, 0);
  const std::string plain = make("q4.img", WeightType::kQ4, false, false, 0);
  const uint64_t budget = llmwire::test::read_bytes(plain).size() * 115 / 100;
  const std::string mixed = make("mixed.img", WeightType::kQ4, true, true, budget, 16);
  EXPECT_LE(llmwire::test::read_bytes(mixed).size(), budget);
  const PerplexityResult x = score(mixed, f32);
  EXPECT_LE(x.perplexity / x.ref_perplexity - 1, 0.03);
  EXPECT_LE(x.mean_kl, 0.028);
  EXPECT_GE(x.top1_agreement, 0.92);
}
