// The split sampler's per-slice pieces (pipeline/split_sampler.h), driven the way
// docs/PROTOCOL.md "Sampled classifier split" says the head drives them, give the token
// Sampler::sample gives on the whole vector: random cuts (empty slices included), ties across
// slices, NaN (at row 0, at a slice's first row, everywhere), infinities, signed zeros, tiny
// candidate batches. The ring itself is checked in test_pipeline.cpp (ClassifierSplit).
#include <gtest/gtest.h>

#include <cstring>
#include <limits>
#include <vector>

#include "engine/sampler.h"
#include "pipeline/classifier_split.h"
#include "pipeline/split_sampler.h"

using namespace llmwire;

namespace {

// The protocol's three rounds over `cuts` (slice k holds rows [cuts[k], cuts[k+1])), with
// candidate batches of `batch`. Returns the token; *fetches counts the refills.
int32_t split_sample(const std::vector<float>& logits, const std::vector<uint32_t>& cuts,
                     const SamplerSettings& ss, Sampler* sampler, uint32_t batch,
                     uint32_t* fetches) {
  const uint32_t vocab = (uint32_t)logits.size();
  const size_t n = cuts.size() - 1;
  std::vector<float> v = logits;
  std::vector<SliceSampler> sl(n);
  std::vector<ClassSlice> raw(n);
  for (size_t k = 0; k < n; k++) {  // round 1: CLASSIFY / CLASS_SLICE
    sl[k].init(v.data() + cuts[k], cuts[k], cuts[k + 1]);
    sl[k].classified(1, 2);
    summarize_slice(v.data() + cuts[k], cuts[k], cuts[k + 1], &raw[k]);
  }
  const float t = ss.temperature;
  float m = 0.0f;
  EXPECT_TRUE(split_softmax_max(raw.data(), n, t, &m));
  // Round 2: PREPARE reaches some boards (the others lost it), then the chain in row order.
  for (size_t k = 0; k < n; k++) {
    if ((cuts[k] + k) % 2) {
      EXPECT_TRUE(sl[k].prepare(1, 2, t, m));
    }
  }
  float sum = 0.0f;
  for (size_t k = 0; k < n; k++) EXPECT_TRUE(sl[k].exp_sum(1, 2, t, m, &sum));
  float again = 0.0f;  // a resent chain adds the same floats again
  for (size_t k = 0; k < n; k++) EXPECT_TRUE(sl[k].exp_sum(1, 2, t, m, &again));
  EXPECT_EQ(std::memcmp(&sum, &again, 4), 0);
  // The max and the denominator are the monolithic softmax's, bit for bit (a token alone
  // would rarely show a sum rounded differently).
  std::vector<float> whole = logits;
  scale_logits(whole.data(), vocab, t);
  const float m0 = softmax_max(whole.data(), vocab);
  const float sum0 = softmax_exp_sum(whole.data(), vocab, m0, 0.0f);
  EXPECT_TRUE(std::memcmp(&m, &m0, 4) == 0 || (m != m && m0 != m0)) << m << " vs " << m0;
  EXPECT_TRUE(std::memcmp(&sum, &sum0, 4) == 0 || (sum != sum && sum0 != sum0))
      << sum << " vs " << sum0;
  const float coin = sampler->draw_coin();
  if (!sampler_uses_topp(ss.topp, vocab)) {
    float cdf = 0.0f;
    for (size_t k = 0; k < n; k++) {
      int32_t row = -1;
      EXPECT_TRUE(sl[k].cdf(1, 2, t, m, sum, coin, &cdf, &row));
      if (row >= 0) return row;
    }
    return (int32_t)vocab - 1;
  }
  const float cutoff = topp_cutoff(ss.topp, vocab);
  std::vector<std::vector<ProbIndex>> buf(n, std::vector<ProbIndex>(batch));
  std::vector<uint32_t> at(n, 0), got(n, 0), sent(n, 0), n0(n, 0);
  std::vector<ClassSlice> probs(n);
  auto fetch = [&](size_t k, bool after) {
    const ProbIndex last = after ? buf[k][got[k] - 1] : ProbIndex{0.0f, 0};
    uint32_t c = 0;
    EXPECT_TRUE(sl[k].top(1, 2, t, m, sum, cutoff, after ? &last : nullptr, buf[k].data(), batch,
                          &c, &n0[k], &probs[k]));
    at[k] = 0;
    got[k] = c;
    sent[k] += c;
  };
  uint32_t total = 0;
  for (size_t k = 0; k < n; k++) {
    fetch(k, false);
    probs[k].row_begin = cuts[k];
    probs[k].row_end = cuts[k + 1];
    total += n0[k];
  }
  if (total == 0) return (int32_t)merge_argmax(probs.data(), n);
  std::vector<ProbIndex> seq;
  float cumulative = 0.0f;
  for (uint32_t i = 0; i < total; i++) {
    for (size_t k = 0; k < n; k++) {
      if (at[k] == got[k] && sent[k] < n0[k]) {
        fetch(k, true);
        (*fetches)++;
      }
    }
    int best = -1;
    for (size_t k = 0; k < n; k++) {
      if (at[k] == got[k]) continue;
      if (best < 0 || topp_before(buf[k][at[k]], buf[best][at[best]])) best = (int)k;
    }
    EXPECT_GE(best, 0);
    if (best < 0) return -1;
    seq.push_back(buf[best][at[best]++]);
    cumulative += seq.back().prob;
    if (cumulative > ss.topp) break;
  }
  return nucleus_draw([&](uint32_t k) { return seq[k]; }, (uint32_t)seq.size(), cumulative, coin);
}

}  // namespace

TEST(SplitSampler, EqualsSamplerOnEveryKindOfVector) {
  uint64_t z = 99;
  auto rnd = [&] {
    z = z * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(z >> 33);
  };
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  const float pool[] = {0.0f, -0.0f, 1.0f, 1.0f, -1.0f, 2.5f, 2.5f, 3.0f, -7.0f, 0.25f};
  const SamplerSettings settings[] = {{0.8f, 0.9f, 1},  {1.0f, 1.0f, 2},  {1.5f, 0.0f, 3},
                                      {0.3f, 0.5f, 4},  {1.0f, 0.99f, 5}, {2.0f, 0.02f, 6},
                                      {1e-3f, 0.9f, 7}, {1e-30f, 0.9f, 8}};
  int cases = 0, nans = 0, fetched_cases = 0;
  for (int trial = 0; trial < 6000; trial++) {
    const uint32_t vocab = 2 + rnd() % 40;
    std::vector<float> v(vocab);
    const uint32_t kind = rnd() % 6;
    for (float& x : v) {
      if (kind == 0) {  // ties from a small pool
        x = pool[rnd() % std::size(pool)];
      } else {  // spread values
        x = (float)((int)(rnd() % 2001) - 1000) / 100.0f;
      }
    }
    if (kind == 2) v[rnd() % vocab] = nan;   // a NaN somewhere
    if (kind == 3) v[0] = nan;               // at row 0
    if (kind == 4) v[rnd() % vocab] = inf;   // an infinity (NaN after exp(inf - inf))
    if (kind == 5) v[rnd() % vocab] = -inf;  // exp(-inf) = 0
    for (float x : v) nans += x != x;
    std::vector<uint32_t> cuts{0};
    while (cuts.back() < vocab) {
      const uint32_t left = vocab - cuts.back();
      cuts.push_back(cuts.back() + (cuts.size() == 1 ? 1 + rnd() % left : rnd() % (left + 1)));
    }
    const SamplerSettings& ss = settings[rnd() % std::size(settings)];
    const uint32_t batch = 1 + rnd() % 3;
    Sampler mono, split;
    std::vector<uint8_t> s1(Sampler::scratch_bytes(vocab)), s2(Sampler::scratch_bytes(vocab));
    SamplerSettings seeded = ss;
    seeded.seed = 1 + (uint64_t)trial;
    ASSERT_EQ(mono.init(vocab, seeded, s1.data(), s1.size()), Status::kOk);
    ASSERT_EQ(split.init(vocab, seeded, s2.data(), s2.size()), Status::kOk);
    for (int draw = 0; draw < 3; draw++) {  // the generators stay in step
      std::vector<float> whole = v;
      const int32_t expect = mono.sample(whole.data());
      uint32_t fetches = 0;
      const int32_t got = split_sample(v, cuts, ss, &split, batch, &fetches);
      ASSERT_EQ(got, expect) << "trial " << trial << " draw " << draw << " vocab " << vocab
                             << " temperature " << ss.temperature << " topp " << ss.topp;
      fetched_cases += fetches > 0;
      cases++;
    }
  }
  EXPECT_GT(nans, 1000);
  EXPECT_GT(fetched_cases, 1000);  // tiny batches made the merge fetch more
  std::printf("%d draws, %d with refills\n", cases, fetched_cases);
}

// A resent or stale request never computes on the wrong state: other positions, keys or sums
// are refused, and a repeat gives the same answer.
TEST(SplitSampler, RefusesOtherPositionsAndKeys) {
  std::vector<float> v{1.0f, 2.0f, 3.0f, 0.5f};
  SliceSampler s;
  s.init(v.data(), 10, 14);
  float sum = 0.0f;
  EXPECT_FALSE(s.exp_sum(1, 2, 1.0f, 3.0f, &sum));  // nothing classified yet
  s.classified(1, 2);
  EXPECT_FALSE(s.exp_sum(1, 3, 1.0f, 3.0f, &sum));  // another position
  EXPECT_TRUE(s.exp_sum(1, 2, 1.0f, 3.0f, &sum));
  float again = 0.0f;
  EXPECT_FALSE(s.exp_sum(1, 2, 1.0f, 2.0f, &again));  // another max: the logits are gone
  EXPECT_TRUE(s.exp_sum(1, 2, 1.0f, 3.0f, &again));
  EXPECT_EQ(sum, again);
  float cdf = 0.0f;
  int32_t row = -1;
  EXPECT_TRUE(s.cdf(1, 2, 1.0f, 3.0f, sum, 0.99f, &cdf, &row));
  EXPECT_FALSE(s.cdf(1, 2, 1.0f, 3.0f, sum * 2.0f, 0.5f, &cdf, &row));  // another sum
  EXPECT_FALSE(s.exp_sum(1, 2, 1.0f, 3.0f, &again));  // probabilities now: no second chain
}
