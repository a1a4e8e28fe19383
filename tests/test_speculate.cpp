// Batched prompts and prompt-lookup speculative decoding: the same tokens and logits as token
// by token, and with sampling the same output distribution (chi-square over many seeds), a
// test shown to fail when the acceptance rule is broken on purpose.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <map>
#include <random>

#include "engine/generator.h"
#include "engine/speculate.h"
#include "platform/host/host_stage.h"
#include "runtime/head_console.h"
#include "test_util.h"
#include "tools/host_model.h"

using namespace llmwire;
using llmwire::test::TempDir;

namespace {

// Wraps a HostModel: records the logits of every generated position (before the sampler
// touches them) and may skip re-feeding a prompt it has already fed (generation writes KV
// only at positions after the prompt, so the prompt's cache stays valid).
class Recorder final : public Forwarder {
 public:
  explicit Recorder(HostModel* m) : m_(m) {}
  Status begin() override { return m_->begin(); }
  Status forward(int32_t token, uint32_t pos, bool need_logits, const float** logits) override {
    const Status s = m_->forward(token, pos, need_logits, logits);
    if (s == Status::kOk && need_logits && record) {
      log.insert(log.end(), *logits, *logits + m_->model().config().vocab_size);
    }
    return s;
  }
  Status feed_prompt(const int32_t* tokens, uint32_t n) override {
    const std::vector<int32_t> p(tokens, tokens + n);
    if (cache_prompt && p == fed_) return Status::kOk;
    fed_ = p;
    return m_->feed_prompt(tokens, n);
  }
  Status forward_batch(const int32_t* tokens, uint32_t pos, uint32_t n, float* logits,
                       uint32_t vocab) override {
    if (one_by_one) return Forwarder::forward_batch(tokens, pos, n, logits, vocab);
    const Status s = m_->forward_batch(tokens, pos, n, logits, vocab);
    if (s == Status::kOk && record) log.insert(log.end(), logits, logits + (size_t)n * vocab);
    return s;
  }
  uint32_t max_batch() const override { return m_->max_batch(); }
  uint32_t seq_len() const override { return m_->seq_len(); }

  std::vector<float> log;
  bool record = true;
  bool cache_prompt = false;
  bool one_by_one = false;  // the default forward_batch(): forward() per position (a ring)

 private:
  HostModel* m_;
  std::vector<int32_t> fed_;
};

struct Story {
  std::vector<int32_t> tokens;
  GenerateStats st;
  Status status = Status::kOk;
};

Story tell(Forwarder* f, const Tokenizer& tok, const std::string& prompt, uint32_t max_new,
           uint32_t speculate, float temp = 0.0f, float topp = 0.9f, uint64_t seed = 1,
           DraftRule rule = DraftRule::kExact) {
  const uint32_t vocab = tok.vocab_size();
  std::vector<uint8_t> scratch(Sampler::scratch_bytes(vocab));
  Sampler s;
  EXPECT_EQ(s.init(vocab, SamplerSettings{temp, topp, seed}, scratch.data(), scratch.size()),
            Status::kOk);
  s.set_draft_rule(rule);
  std::vector<float> logits((size_t)(speculate + 1) * vocab);
  GenerateSpeculation spec;
  spec.max_draft = speculate;
  spec.logits = logits.data();
  spec.logits_len = logits.size();
  Story out;
  out.tokens.resize(prompt.size() + 3 + max_new);
  size_t n = 0;
  out.status = generate(f, tok, &s, prompt.data(), prompt.size(), max_new, out.tokens.data(),
                        out.tokens.size(), GenerateIo{}, &out.st, &n, &spec);
  out.tokens.resize(out.status == Status::kOk ? n : 0);
  return out;
}

void load(HostModel* hm, const std::string& img, uint32_t batch, uint32_t seq = 0) {
  RunOptions o;
  o.prompt_batch = batch;
  o.seq_len = seq;
  std::string err, hint;
  ASSERT_TRUE(hm->load(img, o, 1, &err, &hint)) << err;
}

// The shipped stories260K (models/), converted once per test binary run.
const std::string& real_image(WeightType q) {
  static TempDir dir;
  static std::map<int, std::string> made;
  auto it = made.find((int)q);
  if (it != made.end()) return it->second;
  ConvertOptions o;
  o.checkpoint_path = std::string(LLMWIRE_SOURCE_DIR) + "/models/stories260K.bin";
  o.tokenizer_path = std::string(LLMWIRE_SOURCE_DIR) + "/models/tok512.bin";
  o.output_path = dir.file("s260k_" + std::to_string((int)q) + ".img");
  o.quant = q;
  ConvertReport r;
  std::string err;
  EXPECT_TRUE(convert_checkpoint(o, &r, nullptr, &err)) << err;
  return made[(int)q] = o.output_path;
}

// Openings in the style of the TinyStories evaluation text.
const char* kPrompts[] = {
    "Once upon a time, there was a little girl named Lily. She loved to play",
    "Tom and Sue went to the park. Tom saw a big dog. Sue saw a big cat. Tom",
    "One day, a bird named Bob",
    "",
};

// Two-sample chi-square homogeneity statistic over the outcomes of a and b (equal sizes);
// cells whose expected count is under 5 are pooled. *df gets the degrees of freedom.
double chi_square(const std::map<int64_t, int>& a, const std::map<int64_t, int>& b, int* df) {
  std::map<int64_t, std::pair<double, double>> cells;
  for (auto& [k, v] : a) cells[k].first += v;
  for (auto& [k, v] : b) cells[k].second += v;
  std::vector<std::pair<double, double>> kept;
  std::pair<double, double> pooled{0, 0};
  for (auto& [k, c] : cells) {
    if ((c.first + c.second) / 2 < 5) {
      pooled.first += c.first;
      pooled.second += c.second;
    } else {
      kept.push_back(c);
    }
  }
  if (pooled.first + pooled.second > 0) kept.push_back(pooled);
  double stat = 0;
  for (auto& c : kept) {
    const double e = (c.first + c.second) / 2;  // equal sample sizes
    stat += (c.first - e) * (c.first - e) / e + (c.second - e) * (c.second - e) / e;
  }
  *df = (int)kept.size() - 1;
  return stat;
}

// Upper alpha = 0.001 quantile of chi-square(df), Wilson-Hilferty (z = 3.0902).
double chi_square_critical(int df) {
  const double k = df, z = 3.0902, h = 2.0 / (9.0 * k);
  return k * std::pow(1.0 - h + z * std::sqrt(h), 3.0);
}

}  // namespace

TEST(FindDraft, CopiesWhatFollowedTheMostRecentLongestMatch) {
  int32_t out[8];
  // Suffix (5,6) occurs at 1 and 6; the most recent earlier one (6) is followed by 9 4 5 6.
  const int32_t a[] = {1, 5, 6, 7, 8, 2, 5, 6, 9, 4, 5, 6};
  ASSERT_EQ(find_draft(a, 12, 3, 8, out), 4u);
  EXPECT_EQ(out[0], 9);
  EXPECT_EQ(out[1], 4);
  EXPECT_EQ(out[2], 5);
  EXPECT_EQ(out[3], 6);
  ASSERT_EQ(find_draft(a, 12, 3, 3, out), 3u);  // capped
  // A longer suffix wins over a more recent shorter one: (3,5,6) at 1 beats (5,6) at 6.
  const int32_t b[] = {1, 3, 5, 6, 7, 2, 5, 6, 9, 3, 5, 6};
  ASSERT_EQ(find_draft(b, 12, 3, 2, out), 2u);
  EXPECT_EQ(out[0], 7);
  EXPECT_EQ(out[1], 2);
  // ngram 1: only the last token is matched; max_draft caps the copy.
  ASSERT_EQ(find_draft(b, 12, 1, 1, out), 1u);
  EXPECT_EQ(out[0], 9);  // the 6 at index 7 is followed by 9
  // Nothing recurs: no draft. Too short: no draft.
  const int32_t c[] = {1, 2, 3, 4};
  EXPECT_EQ(find_draft(c, 4, 3, 8, out), 0u);
  EXPECT_EQ(find_draft(c, 1, 3, 8, out), 0u);
  EXPECT_EQ(find_draft(a, 12, 3, 0, out), 0u);
  // A run: the copy may read what it has just matched, and may be written right after it.
  int32_t d[12] = {1, 7, 7, 7};
  ASSERT_EQ(find_draft(d, 4, 3, 8, d + 4), 1u);  // (7,7,7) never recurs; (7,7) at 1 -> 7
  EXPECT_EQ(d[4], 7);
}

// Greedy: the arg max, accepted exactly when it is the draft; no coin drawn.
TEST(SampleDraft, GreedyIsTheArgMaxAndDrawsNoCoin) {
  std::vector<uint8_t> scratch(Sampler::scratch_bytes(4));
  Sampler s;
  ASSERT_EQ(s.init(4, SamplerSettings{0.0f, 0.9f, 5}, scratch.data(), scratch.size()), Status::kOk);
  float l[4] = {0.1f, 2.0f, 2.0f, -1.0f};
  bool kept = true;
  EXPECT_EQ(s.sample_draft(l, 2, &kept), 1);
  EXPECT_FALSE(kept);
  EXPECT_EQ(s.sample_draft(l, 1, &kept), 1);
  EXPECT_TRUE(kept);
  Sampler fresh;
  std::vector<uint8_t> scratch2(Sampler::scratch_bytes(4));
  ASSERT_EQ(fresh.init(4, SamplerSettings{0.0f, 0.9f, 5}, scratch2.data(), scratch2.size()),
            Status::kOk);
  EXPECT_EQ(s.random_u32(), fresh.random_u32());
}

// Sampling: a kept draft costs one coin, a rejected one two (docs/GENERATION.md).
TEST(SampleDraft, CoinsPerDecision) {
  for (float topp : {1.0f, 0.9f}) {
    for (uint64_t seed = 1; seed < 200; seed++) {
      std::vector<uint8_t> sa(Sampler::scratch_bytes(3)), sb(Sampler::scratch_bytes(3));
      Sampler s, ref;
      ASSERT_EQ(s.init(3, SamplerSettings{1.0f, topp, seed}, sa.data(), sa.size()), Status::kOk);
      ASSERT_EQ(ref.init(3, SamplerSettings{1.0f, topp, seed}, sb.data(), sb.size()), Status::kOk);
      float l[3] = {std::log(0.5f), std::log(0.3f), std::log(0.2f)};
      bool kept = false;
      const int32_t t = s.sample_draft(l, 1, &kept);
      const float coin = ref.random_f32();
      EXPECT_EQ(kept, coin < 0.3f) << seed;  // q(1) = 0.3 (nucleus 0.9 holds all three)
      if (kept) {
        EXPECT_EQ(t, 1);
      } else {
        EXPECT_NE(t, 1);
        ref.random_f32();
      }
      EXPECT_EQ(s.random_u32(), ref.random_u32()) << seed << " topp " << topp;
    }
  }
}

// The token sample_draft() returns is distributed as sample()'s, on fixed logits, for plain
// multinomial and top-p, for a likely, an unlikely and an out-of-nucleus draft; the two
// broken rules are detected.
TEST(SampleDraft, DistributionEqualsSample) {
  const std::vector<float> base = {std::log(0.40f), std::log(0.25f), std::log(0.15f),
                                   std::log(0.10f), std::log(0.06f), std::log(0.04f)};
  const int draws = 20000;
  for (float topp : {1.0f, 0.8f}) {
    for (int32_t draft : {0, 2, 5}) {
      for (DraftRule rule : {DraftRule::kExact, DraftRule::kAlwaysAcceptForTests,
                             DraftRule::kKeepDraftInResidualForTests}) {
        std::vector<uint8_t> sa(Sampler::scratch_bytes(6)), sb(Sampler::scratch_bytes(6));
        Sampler plain, spec;
        ASSERT_EQ(plain.init(6, SamplerSettings{1.0f, topp, 11}, sa.data(), sa.size()),
                  Status::kOk);
        ASSERT_EQ(spec.init(6, SamplerSettings{1.0f, topp, 12}, sb.data(), sb.size()), Status::kOk);
        spec.set_draft_rule(rule);
        std::map<int64_t, int> a, b;
        for (int i = 0; i < draws; i++) {
          std::vector<float> l1 = base, l2 = base;
          a[plain.sample(l1.data())]++;
          bool kept = false;
          b[spec.sample_draft(l2.data(), draft, &kept)]++;
        }
        int df = 0;
        const double stat = chi_square(a, b, &df);
        const double crit = chi_square_critical(df);
        // Draft 5 is outside the 0.8 nucleus (q = 0): keeping it in the residual changes
        // nothing there.
        const bool broken =
            rule == DraftRule::kAlwaysAcceptForTests ||
            (rule == DraftRule::kKeepDraftInResidualForTests && !(draft == 5 && topp < 1.0f));
        if (broken) {
          EXPECT_GT(stat, crit) << "topp " << topp << " draft " << draft << " rule " << (int)rule;
        } else {
          EXPECT_LT(stat, crit) << "topp " << topp << " draft " << draft << " rule " << (int)rule;
        }
      }
    }
  }
}

// head_batch() == n calls of head(), every weight type.
TEST(Speculate, HeadBatchEqualsHead) {
  TempDir dir;
  using llmwire::test::small_config;
  struct C {
    ModelConfig cfg;
    WeightType q;
  } cases[] = {{small_config(64, 172, 2, 8, 4, 320, 24), WeightType::kQ4},
               {small_config(64, 172, 2, 8, 4, 300, 24, false), WeightType::kQ8},
               {small_config(64, 100, 2, 4, 1, 300, 24), WeightType::kF32}};
  int k = 0;
  for (const C& c : cases) {
    const std::string img =
        llmwire::test::make_image(dir, c.cfg, c.q, 32, 5, KvType::kF32, "hb" + std::to_string(k++));
    HostModel hm;
    load(&hm, img, 7);
    Model& m = hm.model();
    const uint32_t dim = c.cfg.dim, vocab = c.cfg.vocab_size;
    std::mt19937 rng(3);
    std::normal_distribution<float> nd;
    std::vector<float> x((size_t)7 * dim);
    for (float& v : x) v = nd(rng);
    std::vector<float> want, got((size_t)7 * vocab);
    for (uint32_t i = 0; i < 7; i++) {
      ASSERT_EQ(m.head(x.data() + (size_t)i * dim, 0, vocab, m.logits()), Status::kOk);
      want.insert(want.end(), m.logits(), m.logits() + vocab);
    }
    ASSERT_EQ(m.head_batch(x.data(), 7, got.data()), Status::kOk);
    EXPECT_EQ(0, std::memcmp(want.data(), got.data(), want.size() * 4)) << k;
    EXPECT_EQ(m.head_batch(x.data(), 8, got.data()), Status::kBadArgument);
  }
}

// generate() with the prompt fed in chunks of B = 1, 2, 7, 32: the same tokens and bit-identical
// logits at every generated position, on real stories260K and a synthetic shape.
TEST(Speculate, BatchedPromptGeneratesTheSameStory) {
  TempDir dir;
  const std::string synth = llmwire::test::make_image(
      dir, llmwire::test::small_config(96, 256, 2, 6, 2, 320, 128, false), WeightType::kQ4);
  for (const std::string& img : {real_image(WeightType::kQ4), synth}) {
    for (const char* prompt : kPrompts) {
      std::vector<int32_t> want_tokens;
      std::vector<float> want_logits;
      for (uint32_t b : {1u, 2u, 7u, 32u}) {
        HostModel hm;
        load(&hm, img, b);
        Recorder r(&hm);
        const Story s = tell(&r, hm.tokenizer(), prompt, 24, 0, 0.8f, 0.9f, 42);
        ASSERT_EQ(s.status, Status::kOk) << img << " '" << prompt << "'";
        if (b == 1) {
          want_tokens = s.tokens;
          want_logits = r.log;
          ASSERT_FALSE(want_logits.empty());
          continue;
        }
        EXPECT_EQ(s.tokens, want_tokens) << img << " B " << b << " '" << prompt << "'";
        EXPECT_TRUE(r.log.size() == want_logits.size() &&
                    std::memcmp(r.log.data(), want_logits.data(), r.log.size() * 4) == 0)
            << img << " B " << b << " '" << prompt << "'";
      }
    }
  }
}

// Greedy speculation tells the plain greedy story token for token, and on a real model it
// does drafts, keeps some and saves passes.
TEST(Speculate, GreedyEqualsPlainOnRealStories260K) {
  for (WeightType q : {WeightType::kQ4, WeightType::kF32}) {
    HostModel hm;
    load(&hm, real_image(q), 32);
    const std::vector<uint32_t> drafts =
        q == WeightType::kQ4 ? std::vector<uint32_t>{2, 31} : std::vector<uint32_t>{8};
    uint32_t drafted = 0, accepted = 0, passes = 0, generated = 0;
    for (const char* prompt : kPrompts) {
      const Story plain = tell(&hm, hm.tokenizer(), prompt, 200, 0);
      ASSERT_EQ(plain.status, Status::kOk);
      // One pass per token, and one more for the end of the story if it came first.
      EXPECT_EQ(plain.st.passes, plain.st.generated_tokens + (plain.st.generated_tokens < 200))
          << prompt;
      for (uint32_t n : drafts) {
        const Story s = tell(&hm, hm.tokenizer(), prompt, 200, n);
        ASSERT_EQ(s.status, Status::kOk);
        EXPECT_EQ(s.tokens, plain.tokens) << "'" << prompt << "' speculate " << n;
        EXPECT_LE(s.st.accepted, s.st.drafted);
        drafted += s.st.drafted;
        accepted += s.st.accepted;
        passes += s.st.passes;
        generated += s.st.generated_tokens;
      }
    }
    EXPECT_GT(accepted, 0u);
    EXPECT_GT(drafted, accepted);
    EXPECT_LT(passes, generated);
  }
}

// The limits: the context end, max_new, EOS inside a verified run, tiny batches.
TEST(Speculate, GreedyEqualsPlainAtTheLimits) {
  TempDir dir;
  const std::string synth = llmwire::test::make_image(
      dir, llmwire::test::small_config(64, 172, 2, 8, 4, 320, 40), WeightType::kQ8);
  const std::string real = real_image(WeightType::kQ4);
  struct Limits {
    const std::string* path;
    uint32_t seq;
    std::vector<uint32_t> max_new, batches;
  } cases[] = {{&synth, 0, {1, 2, 3, 17, 600}, {2, 5, 32}},
               {&real, 24, {1, 2, 3, 17, 600}, {2, 5, 32}},
               {&real, 0, {600}, {32}}};  // to the end of the story or the context
  for (const Limits& c : cases) {
    HostModel plain_m;
    load(&plain_m, *c.path, 1, c.seq);
    for (uint32_t batch : c.batches) {
      HostModel spec_m;
      load(&spec_m, *c.path, batch, c.seq);
      for (const char* prompt : kPrompts) {
        for (uint32_t max_new : c.max_new) {
          const Story a = tell(&plain_m, plain_m.tokenizer(), prompt, max_new, 0);
          const Story b = tell(&spec_m, spec_m.tokenizer(), prompt, max_new, 31);
          EXPECT_EQ(a.status, b.status);
          EXPECT_EQ(a.tokens, b.tokens) << *c.path << " seq " << c.seq << " batch " << batch
                                        << " max_new " << max_new << " '" << prompt << "'";
        }
      }
    }
  }
}

// Sampling with speculation draws each token from the same distribution as without: the
// first three generated tokens (each on its own, and the first two jointly) over 2,000 seeds
// each, two-sample chi-square at significance 0.001. The same test detects an acceptance rule
// that always keeps the draft, and one that keeps the draft in the residual.
TEST(Speculate, SampledDistributionEqualsPlain) {
  HostModel hm;
  load(&hm, real_image(WeightType::kF32), 8);
  Recorder r(&hm);
  r.record = false;
  r.cache_prompt = true;
  // Repetitive, so prompt lookup drafts at once; " Tom" after "Sue." is uncertain.
  const char* prompt = "Tom and Sue went to the park. Tom saw a big dog. Sue saw a big cat.";
  const int seeds = 2000;
  auto collect = [&](uint32_t speculate, DraftRule rule, uint64_t seed0, uint32_t* drafted,
                     uint32_t* accepted) {
    std::vector<std::map<int64_t, int>> h(4);
    for (int i = 0; i < seeds; i++) {
      const Story s =
          tell(&r, hm.tokenizer(), prompt, 3, speculate, 1.0f, 0.9f, seed0 + (uint64_t)i, rule);
      EXPECT_EQ(s.status, Status::kOk);
      const size_t np = s.tokens.size() - s.st.generated_tokens;
      int64_t t[3] = {-1, -1, -1};  // -1: the story had ended
      for (size_t j = 0; j < 3 && np + j < s.tokens.size(); j++) t[j] = s.tokens[np + j];
      h[0][t[0]]++;
      h[1][t[1]]++;
      h[2][t[2]]++;
      h[3][(t[0] + 1) * 1024 + (t[1] + 1)]++;
      *drafted += s.st.drafted;
      *accepted += s.st.accepted;
    }
    return h;
  };
  uint32_t d0 = 0, a0 = 0;
  const auto plain = collect(0, DraftRule::kExact, 1, &d0, &a0);
  EXPECT_EQ(d0, 0u);
  struct Variant {
    DraftRule rule;
    const char* name;
  } variants[] = {{DraftRule::kExact, "exact"},
                  {DraftRule::kAlwaysAcceptForTests, "always accept (broken)"},
                  {DraftRule::kKeepDraftInResidualForTests, "draft kept in residual (broken)"}};
  for (const Variant& v : variants) {
    uint32_t drafted = 0, accepted = 0;
    const auto spec = collect(4, v.rule, 100001, &drafted, &accepted);
    bool any_rejects = false;
    const char* what[] = {"token 1", "token 2", "token 3", "tokens 1-2"};
    for (int j = 0; j < 4; j++) {
      int df = 0;
      const double stat = chi_square(plain[j], spec[j], &df);
      const double crit = chi_square_critical(df);
      std::printf("%s, %s: chi-square %.1f, df %d, critical (0.001) %.1f\n", v.name, what[j], stat,
                  df, crit);
      if (v.rule == DraftRule::kExact) {
        EXPECT_LT(stat, crit) << what[j];
      } else {
        any_rejects |= stat > crit;
      }
    }
    std::printf("%s: drafted %u, accepted %u\n", v.name, drafted, accepted);
    if (v.rule != DraftRule::kExact) {
      EXPECT_TRUE(any_rejects) << v.name;
    }
    EXPECT_GT(drafted, (uint32_t)seeds);  // every story drafts
    if (v.rule == DraftRule::kExact) {
      EXPECT_GT(accepted, drafted / 20);  // guesses are kept, and rejected
      EXPECT_LT(accepted, drafted);
    }
  }
}

// The default forward_batch() (what a ring head uses: position by position) is exact too.
TEST(Speculate, PositionByPositionVerificationEqualsPlain) {
  HostModel hm;
  load(&hm, real_image(WeightType::kQ4), 8);
  Recorder r(&hm);
  r.one_by_one = true;
  for (const char* prompt : kPrompts) {
    const Story a = tell(&hm, hm.tokenizer(), prompt, 120, 0);
    const Story b = tell(&r, hm.tokenizer(), prompt, 120, 7);
    ASSERT_EQ(b.status, Status::kOk);
    EXPECT_EQ(a.tokens, b.tokens) << prompt;
    EXPECT_GT(b.st.drafted, 0u) << prompt;
  }
}

// The board's console: /spec on a one-board model tells the same greedy story with fewer
// passes, and /stats says how many; /spec above the board's limit is refused.
TEST(Speculate, HeadConsoleSpecKeepsTheStoryAndReportsPasses) {
  const std::string img = real_image(WeightType::kQ4);
  const std::string prompt = kPrompts[0];
  auto emit = [](void* ctx, const char* s, size_t n) {
    static_cast<std::string*>(ctx)->append(s, n);
  };
  std::string texts[2], stats[2], refusal;
  for (int spec = 0; spec < 2; spec++) {
    StageOptions so;
    so.speculate = spec ? 8 : 0;
    so.run.prompt_batch = so.speculate + 1;
    HostStage hs;
    std::string err, hint;
    ASSERT_TRUE(hs.boot(img, nullptr, so, 1, 7, nullptr, &err, &hint)) << err;
    HeadConsole hc;
    std::string out;
    hc.init(&hs.stage(), emit, &out);
    for (const char* line : {"/temp 0", "/len 150", spec ? "/spec 8" : "/spec 0"}) {
      hc.handle_line(line, std::strlen(line));
    }
    EXPECT_NE(out.find(spec ? "ok: spec 8" : "ok: spec 0"), std::string::npos) << out;
    out.clear();
    hc.handle_line(prompt.data(), prompt.size());
    texts[spec] = out.substr(0, out.find("\n["));
    out.clear();
    hc.handle_line("/stats", 6);
    stats[spec] = out;
    out.clear();
    hc.handle_line("/spec 9", 7);
    refusal = out;
  }
  EXPECT_EQ(texts[0], texts[1]);
  EXPECT_GT(texts[0].size(), prompt.size() + 100);
  EXPECT_NE(refusal.find("at most 8 guessed tokens"), std::string::npos) << refusal;
  unsigned passes[2] = {0, 0}, tokens[2] = {0, 0};
  for (int spec = 0; spec < 2; spec++) {
    const size_t at = stats[spec].find("last story ");
    ASSERT_NE(at, std::string::npos) << stats[spec];
    ASSERT_EQ(std::sscanf(stats[spec].c_str() + at, "last story %u weight passes for %u tokens",
                          &passes[spec], &tokens[spec]),
              2)
        << stats[spec];
  }
  EXPECT_NE(stats[0].find("(1.00 per token)"), std::string::npos) << stats[0];
  EXPECT_EQ(tokens[0], tokens[1]);
  EXPECT_EQ(passes[0], tokens[0]);
  EXPECT_LT(passes[1], tokens[1]);
  EXPECT_NE(stats[1].find("speculation: spec 8 (at most 8)"), std::string::npos) << stats[1];
}

// The CLI: --speculate tells the same greedy story and reports the passes; --batch does not
// change a token.
TEST(Speculate, GenerateCommandReportsPassesAndKeepsTheStory) {
  const std::string img = real_image(WeightType::kQ4);
  TempDir dir;
  auto run = [&](const std::string& args, std::string* err) {
    const std::string out = dir.file("out"), log = dir.file("err");
    const std::string cmd = std::string(LLMWIRE_BIN) + " generate " + img +
                            " -p 'Tom and Sue went to the park.' -n 120 --temp 0 --seed 3 " + args +
                            " >" + out + " 2>" + log;
    EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
    *err = llmwire::test::read_file(log);
    return llmwire::test::read_file(out);
  };
  std::string e0, e1, e2;
  const std::string plain = run("--batch 1", &e0);
  EXPECT_GT(plain.size(), 200u);
  EXPECT_EQ(run("--batch 7", &e1), plain);
  EXPECT_EQ(e1.find("speculation:"), std::string::npos) << e1;
  EXPECT_EQ(run("--speculate 6", &e2), plain);
  unsigned drafted = 0, kept = 0;
  const size_t at = e2.find("speculation: drafted ");
  ASSERT_NE(at, std::string::npos) << e2;
  ASSERT_EQ(std::sscanf(e2.c_str() + at, "speculation: drafted %u, accepted %u", &drafted, &kept),
            2)
      << e2;
  EXPECT_GT(drafted, kept);
  EXPECT_GT(kept, 0u);
  float per_token = 0;
  unsigned passes = 0;
  const size_t p = e2.find("weight passes per generated token ", at);
  ASSERT_NE(p, std::string::npos) << e2;
  ASSERT_EQ(std::sscanf(e2.c_str() + p, "weight passes per generated token %f (%u passes)",
                        &per_token, &passes),
            2)
      << e2;
  EXPECT_LT(per_token, 1.0f);
  EXPECT_GT(passes, 0u);
}

TEST(Speculate, SpecCommandParsing) {
  char msg[256];
  Command c = parse_command("/spec 31", 8, 256, msg, sizeof msg);
  ASSERT_EQ(c.kind, CommandKind::kSpec);
  EXPECT_EQ(c.u, 31u);
  StorySettings s;
  EXPECT_TRUE(apply_setting(c, &s));
  EXPECT_EQ(s.speculate, 31u);
  EXPECT_EQ(parse_command("/spec 0", 7, 256, msg, sizeof msg).kind, CommandKind::kSpec);
  for (const char* bad : {"/spec", "/spec 32", "/spec x", "/spec -1", "/spec 1.5"}) {
    c = parse_command(bad, std::strlen(bad), 256, msg, sizeof msg);
    EXPECT_EQ(c.kind, CommandKind::kInvalid) << bad;
    EXPECT_NE(std::string(msg).find("from 0 (off) to 31"), std::string::npos) << bad << ": " << msg;
  }
}
