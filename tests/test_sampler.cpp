// Sampler: llama2.c's xorshift64* generator, greedy/multinomial/top-p rules, and the heap-based
// top-p selection checked against a plain full-sort implementation written here.
#include <gtest/gtest.h>
#include <math.h>

#include <algorithm>
#include <set>
#include <vector>

#include "engine/mathfn.h"
#include "engine/sampler.h"

namespace llmwire {
namespace {

// llama2.c's generator, written out again with plain uint64 arithmetic.
struct RefRng {
  uint64_t s;
  uint32_t u32() {
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return (uint32_t)((s * 0x2545F4914F6CDD1DULL) >> 32);
  }
  float f32() { return (float)(u32() >> 8) / 16777216.0f; }
};

// Full-sort top-p over probabilities (llama2.c's rule with ties by ascending id).
int32_t reference_topp(const std::vector<float>& probs, float topp, float coin) {
  const size_t n = probs.size();
  const float cutoff = (1.0f - topp) / (float)(n - 1);
  std::vector<std::pair<float, int32_t>> c;
  for (size_t i = 0; i < n; i++) {
    if (probs[i] >= cutoff) c.emplace_back(probs[i], (int32_t)i);
  }
  std::sort(c.begin(), c.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  });
  float cum = 0.0f;
  size_t last = c.size() - 1;
  for (size_t i = 0; i < c.size(); i++) {
    cum += c[i].first;
    if (cum > topp) {
      last = i;
      break;
    }
  }
  const float r = coin * cum;
  float cdf = 0.0f;
  for (size_t i = 0; i <= last; i++) {
    cdf += c[i].first;
    if (r < cdf) return c[i].second;
  }
  return c[last].second;
}

int32_t reference_mult(const std::vector<float>& probs, float coin) {
  float cdf = 0.0f;
  for (size_t i = 0; i < probs.size(); i++) {
    cdf += probs[i];
    if (coin < cdf) return (int32_t)i;
  }
  return (int32_t)probs.size() - 1;
}

struct TestSampler {
  std::vector<uint8_t> scratch;
  Sampler s;
  TestSampler(uint32_t vocab, float temperature, float topp, uint64_t seed) {
    scratch.resize(Sampler::scratch_bytes(vocab));
    SamplerSettings st;
    st.temperature = temperature;
    st.topp = topp;
    st.seed = seed;
    EXPECT_EQ(s.init(vocab, st, scratch.data(), scratch.size()), Status::kOk);
  }
  int32_t sample(std::vector<float> logits) { return s.sample(logits.data()); }
};

// Logits whose softmax is (close to) the given probabilities.
std::vector<float> logits_for(const std::vector<double>& p) {
  std::vector<float> l;
  for (double x : p) l.push_back((float)log(x));
  return l;
}

// Counts how often each id is drawn in `draws` samples.
std::vector<int> histogram(TestSampler* t, const std::vector<float>& logits, int draws) {
  std::vector<int> h(logits.size(), 0);
  for (int i = 0; i < draws; i++) {
    const int32_t id = t->sample(logits);
    EXPECT_GE(id, 0);
    EXPECT_LT(id, (int32_t)logits.size());
    if (id >= 0 && id < (int32_t)logits.size()) h[id]++;
  }
  return h;
}

TEST(SamplerRng, XorshiftFirstValues) {
  // Constants computed independently (Python big integers masked to 64 bits).
  struct Case {
    uint64_t seed;
    uint32_t v[3];
  } cases[] = {
      {1, {1206177355u, 2882512552u, 3117485455u}},
      {42, {1456360119u, 3359763283u, 3393612768u}},
      {0x123456789ABCDEFull, {2090107463u, 3580909202u, 2293702203u}},
  };
  for (const Case& c : cases) {
    TestSampler t(4, 1.0f, 0.9f, c.seed);
    for (uint32_t v : c.v) EXPECT_EQ(t.s.random_u32(), v) << "seed " << c.seed;
  }
  for (uint64_t seed : {1ull, 7ull, 1234567ull, 0xDEADBEEFCAFEBABEull}) {
    TestSampler t(4, 1.0f, 0.9f, seed);
    RefRng r{seed};
    for (int i = 0; i < 1000; i++) ASSERT_EQ(t.s.random_u32(), r.u32()) << seed << " " << i;
  }
}

TEST(SamplerRng, FloatIsTop24Bits) {
  TestSampler a(4, 1.0f, 0.9f, 99), b(4, 1.0f, 0.9f, 99);
  for (int i = 0; i < 1000; i++) {
    const uint32_t u = a.s.random_u32();
    const float f = b.s.random_f32();
    EXPECT_EQ(f, (float)(u >> 8) / 16777216.0f);
    EXPECT_GE(f, 0.0f);
    EXPECT_LT(f, 1.0f);
  }
}

TEST(SamplerRng, ReseedRestartsTheStream) {
  TestSampler t(4, 1.0f, 0.9f, 5);
  const uint32_t first = t.s.random_u32();
  t.s.random_u32();
  t.s.reseed(5);
  EXPECT_EQ(t.s.random_u32(), first);
  EXPECT_EQ(t.s.settings().seed, 5u);
}

TEST(SamplerGreedy, TemperatureZeroIsFirstArgmax) {
  TestSampler t(5, 0.0f, 0.9f, 3);
  std::vector<float> logits = {1.0f, 3.0f, -2.0f, 3.0f, 2.9f};
  EXPECT_EQ(t.s.sample(logits.data()), 1);
  EXPECT_EQ(logits[1], 3.0f);  // greedy leaves the logits alone
  // Greedy draws no coin: the generator is still at its first value.
  RefRng r{3};
  EXPECT_EQ(t.s.random_u32(), r.u32());
  EXPECT_EQ(argmax(logits.data(), 5), 1);
  const float all_same[3] = {2.0f, 2.0f, 2.0f};
  EXPECT_EQ(argmax(all_same, 3), 0);
  const float neg[3] = {-5.0f, -1.0f, -3.0f};
  EXPECT_EQ(argmax(neg, 3), 1);
}

TEST(SamplerSoftmax, SequentialWithOwnExp) {
  std::vector<float> v = {1.0f, 2.5f, -3.0f, 0.25f, 2.5f};
  std::vector<float> expect(v.size());
  float m = 2.5f, sum = 0.0f;
  for (size_t i = 0; i < v.size(); i++) {
    expect[i] = exp_f32(v[i] - m);
    sum += expect[i];
  }
  for (float& e : expect) e /= sum;
  softmax(v.data(), (uint32_t)v.size());
  for (size_t i = 0; i < v.size(); i++) EXPECT_EQ(v[i], expect[i]) << i;
  // Max-subtracted: huge logits do not overflow.
  float big[2] = {1000.0f, 1000.0f};
  softmax(big, 2);
  EXPECT_EQ(big[0], 0.5f);
  EXPECT_EQ(big[1], 0.5f);
  float one[1] = {-7.0f};
  softmax(one, 1);
  EXPECT_EQ(one[0], 1.0f);
}

TEST(SamplerDeterminism, SameSeedSameTokensOtherSeedDiffers) {
  std::vector<float> logits(100);
  for (size_t i = 0; i < logits.size(); i++) logits[i] = (float)((i * 37) % 11) * 0.1f;
  for (float topp : {0.0f, 0.9f}) {
    TestSampler a(100, 1.0f, topp, 1234), b(100, 1.0f, topp, 1234), c(100, 1.0f, topp, 1235);
    std::vector<int32_t> sa, sb, sc;
    for (int i = 0; i < 64; i++) {
      sa.push_back(a.sample(logits));
      sb.push_back(b.sample(logits));
      sc.push_back(c.sample(logits));
    }
    EXPECT_EQ(sa, sb) << "topp " << topp;
    EXPECT_NE(sa, sc) << "topp " << topp;
  }
}

TEST(SamplerTopP, KeepsTheSmallestSetAboveP) {
  const std::vector<float> logits = logits_for({0.5, 0.3, 0.15, 0.05});
  {
    // 0.5 + 0.3 = 0.8 > 0.7: only {0, 1}, in the ratio 5:3.
    TestSampler t(4, 1.0f, 0.7f, 11);
    const std::vector<int> h = histogram(&t, logits, 4000);
    EXPECT_GT(h[0], 0);
    EXPECT_GT(h[1], 0);
    EXPECT_EQ(h[2], 0);
    EXPECT_EQ(h[3], 0);
    EXPECT_NEAR(h[0] / 4000.0, 0.625, 0.04);
  }
  {
    // 0.8 <= 0.9 < 0.95: {0, 1, 2}; id 3 passes the cutoff (0.1/3) but is outside the nucleus.
    TestSampler t(4, 1.0f, 0.9f, 12);
    const std::vector<int> h = histogram(&t, logits, 4000);
    EXPECT_GT(h[0], 0);
    EXPECT_GT(h[1], 0);
    EXPECT_GT(h[2], 0);
    EXPECT_EQ(h[3], 0);
  }
  {
    // Same distribution, shuffled ids: the order is by probability, not position.
    TestSampler t(4, 1.0f, 0.7f, 13);
    const std::vector<int> h = histogram(&t, logits_for({0.05, 0.3, 0.5, 0.15}), 4000);
    EXPECT_EQ(h[0], 0);
    EXPECT_GT(h[1], 0);
    EXPECT_GT(h[2], 0);
    EXPECT_EQ(h[3], 0);
  }
}

TEST(SamplerTopP, TiesAreOrderedById) {
  // Equal logits give bit-identical probabilities: 0.3 at ids 1 and 3, 0.2 at ids 0 and 2.
  const std::vector<float> logits = logits_for({0.2, 0.3, 0.2, 0.3});
  {
    // The first candidate alone exceeds 0.25: it must be id 1, the lower of the two.
    TestSampler t(4, 1.0f, 0.25f, 21);
    const std::vector<int> h = histogram(&t, logits, 500);
    EXPECT_EQ(h[1], 500);
  }
  {
    // 0.3 + 0.3 + 0.2 > 0.7: ids 1, 3 and then 0 (not 2).
    TestSampler t(4, 1.0f, 0.7f, 22);
    const std::vector<int> h = histogram(&t, logits, 4000);
    EXPECT_GT(h[0], 0);
    EXPECT_GT(h[1], 0);
    EXPECT_EQ(h[2], 0);
    EXPECT_GT(h[3], 0);
  }
}

TEST(SamplerMultinomial, EveryTokenInProportion) {
  const std::vector<float> logits = logits_for({0.5, 0.3, 0.15, 0.05});
  for (float topp : {0.0f, 1.0f, -1.0f}) {
    TestSampler t(4, 1.0f, topp, 31);
    const int n = 20000;
    const std::vector<int> h = histogram(&t, logits, n);
    EXPECT_NEAR(h[0] / (double)n, 0.5, 0.02) << topp;
    EXPECT_NEAR(h[1] / (double)n, 0.3, 0.02) << topp;
    EXPECT_NEAR(h[2] / (double)n, 0.15, 0.02) << topp;
    EXPECT_NEAR(h[3] / (double)n, 0.05, 0.01) << topp;
  }
}

TEST(SamplerMultinomial, CoinMustBeBelowTheCdf) {
  // Seed 0 keeps xorshift at 0, so every coin is exactly 0. Id 0 has probability 0: its cdf
  // (0) is not above the coin, so the draw is id 1.
  TestSampler t(3, 1.0f, 0.0f, 0);
  std::vector<float> probs = {-200.0f, 0.0f, 0.0f};
  softmax(probs.data(), 3);
  ASSERT_EQ(probs[0], 0.0f);
  for (int i = 0; i < 10; i++) EXPECT_EQ(t.sample({-200.0f, 0.0f, 0.0f}), 1);
}

TEST(SamplerTopP, CutoffIsInclusiveMassIsExclusive) {
  // Five equal logits: every probability is 0.2f, exactly the cutoff (1 - 0.2f) / 4. All five
  // are candidates (p >= cutoff); the mass must exceed 0.2f, so the nucleus is ids {0, 1}.
  const float topp = 0.2f;
  std::vector<float> probs(5, 0.0f);
  softmax(probs.data(), 5);
  ASSERT_EQ(probs[0], (1.0f - topp) / 4.0f);
  TestSampler t(5, 1.0f, topp, 51);
  const std::vector<int> h = histogram(&t, std::vector<float>(5, 0.0f), 2000);
  EXPECT_GT(h[0], 0);
  EXPECT_GT(h[1], 0);
  EXPECT_EQ(h[2] + h[3] + h[4], 0);
}

// The heap must pick exactly what a full sort picks, ties included, for every rule.
TEST(SamplerTopP, MatchesFullSortReference) {
  const uint32_t vocab = 1000;
  RefRng gen{777};
  for (int round = 0; round < 60; round++) {
    // Coarse logits so that many probabilities tie exactly.
    std::vector<float> logits(vocab);
    const float spread = round % 3 == 0 ? 0.25f : (round % 3 == 1 ? 1.0f : 4.0f);
    for (float& l : logits) l = (float)(gen.u32() % 33) * spread / 8.0f - spread * 2;
    const float temps[] = {1.0f, 0.7f, 1.3f};
    const float topps[] = {0.9f, 0.5f, 0.99f, 0.05f, 0.0f, 1.0f};
    const float temp = temps[round % 3];
    const float topp = topps[round % 6];
    const uint64_t seed = 1000 + round;
    TestSampler t(vocab, temp, topp, seed);
    RefRng rng{seed};
    for (int draw = 0; draw < 20; draw++) {
      std::vector<float> probs = logits;
      for (float& p : probs) p /= temp;
      softmax(probs.data(), vocab);
      const float coin = rng.f32();
      const int32_t expect = (topp <= 0.0f || topp >= 1.0f) ? reference_mult(probs, coin)
                                                            : reference_topp(probs, topp, coin);
      // sample() leaves the probabilities in the logits: division by t, then softmax.
      std::vector<float> inplace = logits;
      ASSERT_EQ(t.s.sample(inplace.data()), expect) << "round " << round << " draw " << draw;
      ASSERT_EQ(inplace, probs) << "round " << round;
    }
  }
}

TEST(SamplerTopP, DegenerateInputsDoNotCrash) {
  // topp below 1/n with a flat distribution leaves no candidate above the cutoff.
  TestSampler flat(4, 1.0f, 0.1f, 41);
  EXPECT_EQ(flat.sample({1.0f, 1.0f, 1.0f, 1.0f}), 0);
  TestSampler single(1, 1.0f, 0.9f, 42);
  EXPECT_EQ(single.sample({3.0f}), 0);
  TestSampler low_t(3, 0.01f, 0.9f, 43);
  for (int i = 0; i < 50; i++) EXPECT_EQ(low_t.sample({1.0f, 2.0f, 1.5f}), 1);
}

TEST(SamplerInit, ScratchAndArguments) {
  Sampler s;
  SamplerSettings st;
  std::vector<uint8_t> buf(Sampler::scratch_bytes(100) + 16);
  EXPECT_EQ(s.init(0, st, buf.data(), buf.size()), Status::kBadArgument);
  EXPECT_EQ(s.init(100, st, nullptr, buf.size()), Status::kBadArgument);
  EXPECT_EQ(s.init(100, st, buf.data(), Sampler::scratch_bytes(100) - 1), Status::kArenaTooSmall);
  EXPECT_GE(Sampler::scratch_bytes(100), 100 * 8u);
  EXPECT_EQ(Sampler::scratch_bytes(0xFFFFFFFFu) >= 0xFFFFFFFFull * 8 ||
                Sampler::scratch_bytes(0xFFFFFFFFu) == SIZE_MAX,
            true);

  // A misaligned scratch pointer works and gives the same tokens.
  std::vector<float> logits(100);
  for (size_t i = 0; i < logits.size(); i++) logits[i] = (float)(i % 7) * 0.3f;
  st.temperature = 1.0f;
  st.topp = 0.9f;
  st.seed = 8;
  Sampler a, b;
  std::vector<uint8_t> aligned(Sampler::scratch_bytes(100));
  ASSERT_EQ(a.init(100, st, aligned.data(), aligned.size()), Status::kOk);
  ASSERT_EQ(b.init(100, st, buf.data() + 1, Sampler::scratch_bytes(100)), Status::kOk);
  for (int i = 0; i < 50; i++) {
    std::vector<float> la = logits, lb = logits;
    ASSERT_EQ(a.sample(la.data()), b.sample(lb.data())) << i;
  }
}

}  // namespace
}  // namespace llmwire
