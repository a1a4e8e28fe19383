// Real trained weights ($LLMWIRE_MODELS): llama2.c's published stories260K outputs are
// reproduced word for word, and quantization keeps perplexity close to f32.
#include <gtest/gtest.h>

#include <cmath>

#include "engine/generator.h"
#include "test_util.h"
#include "tools/perplexity.h"

using namespace llmwire;
using llmwire::test::TempDir;

namespace {

// Published in karpathy/llama2.c doc/stories260K.md: `./run stories260K.bin -z tok512.bin -t 0.0`.
const char* kGreedyStory =
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. "
    "One day, she saw a big, red ball. She wanted to play with it, but it was too high.\n"
    "Lily's mom said, \"Lily, let's go to the park.\" Lily was sad and didn't know what to do. She "
    "said, \"I want to play with your ball, but I can't find it.\"\n"
    "Lily was sad and didn't know what to do. She said, \"I'm sorry, Lily. I didn't know what to "
    "do.\"\n"
    "Lily didn't want to help her mom, so she said, \"I'm sorry, mom. I didn't know what to do.\" "
    "Her mom said, \"Don't worry, Lily. We can help you.";

// Same document: `-t 1.0 -p 0.9 -s 133742`.
const char* kSampledStory =
    "Once upon a time, there was a little boy named Timmy. Timmy loved to play with his toys and "
    "eat sandwiches. One day, Timmy's mom told him it was time to rest for a while. Timmy's friend "
    "Billy came over and took him a down.\n"
    "Timmy's mom saw that Timmy was sad, but Timmy said, \"I didn't understand what is it! We need "
    "to find some leafs.\" Timmy thought about it and took a deep breath on a spoon. He hoped it "
    "was important to be kind and continued to find its image next time.\n"
    "After they finished getting, Timmy's dad came up to his house and promised to help Timmy.";

struct RealModel : ::testing::Test {
  std::string models;
  TempDir dir;
  void SetUp() override {
    std::string why;
    models = llmwire::test::models_dir({"stories260K.bin", "tok512.bin"}, &why);
    if (models.empty()) GTEST_SKIP() << why;
  }
  std::string convert(WeightType q) {
    ConvertOptions o;
    o.checkpoint_path = models + "/stories260K.bin";
    o.tokenizer_path = models + "/tok512.bin";
    o.output_path = dir.file(std::string("s260k_") + std::to_string((int)q) + ".img");
    o.quant = q;
    ConvertReport r;
    std::string err;
    EXPECT_TRUE(convert_checkpoint(o, &r, nullptr, &err)) << err;
    return o.output_path;
  }
};

std::string story(const std::string& img, float temp, float topp, uint64_t seed, uint32_t threads) {
  HostModel hm;
  std::string err, hint, text;
  EXPECT_TRUE(hm.load(img, RunOptions{}, threads, &err, &hint)) << err;
  std::vector<uint8_t> scratch(Sampler::scratch_bytes(512));
  Sampler s;
  SamplerSettings ss{temp, topp, seed};
  EXPECT_EQ(s.init(512, ss, scratch.data(), scratch.size()), Status::kOk);
  std::vector<int32_t> toks(512);
  GenerateIo io;
  io.ctx = &text;
  io.emit = [](void* ctx, const char* b, size_t n) {
    static_cast<std::string*>(ctx)->append(b, n);
  };
  GenerateStats st;
  size_t n = 0;
  // llama2.c's default of 256 steps: BOS at position 0, then 256 sampled tokens.
  EXPECT_EQ(generate(&hm, hm.tokenizer(), &s, "", 0, 256, toks.data(), toks.size(), io, &st, &n),
            Status::kOk);
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

}  // namespace

TEST_F(RealModel, F32GreedyStoryMatchesLlama2c) {
  const std::string img = convert(WeightType::kF32);
  EXPECT_EQ(story(img, 0.0f, 0.9f, 1, 1), kGreedyStory);
  EXPECT_EQ(story(img, 0.0f, 0.9f, 1, 2), kGreedyStory);
}

TEST_F(RealModel, F32SampledStoryMatchesLlama2cSeed133742) {
  const std::string img = convert(WeightType::kF32);
  EXPECT_EQ(story(img, 1.0f, 0.9f, 133742, 1), kSampledStory);
}

TEST_F(RealModel, QuantizedPerplexityStaysCloseToF32) {
  std::string eval = std::string(std::getenv("LLMWIRE_EVAL") ? std::getenv("LLMWIRE_EVAL") : "");
  if (eval.empty()) eval = models + "/../eval/stories260K_samples.txt";
  const std::string text = llmwire::test::read_file(eval);
  if (text.empty()) GTEST_SKIP() << "no evaluation text at " << eval << " (set LLMWIRE_EVAL)";
  HostModel f32, q8, q4;
  std::string err, hint;
  ASSERT_TRUE(f32.load(convert(WeightType::kF32), RunOptions{}, 2, &err, &hint)) << err;
  ASSERT_TRUE(q8.load(convert(WeightType::kQ8), RunOptions{}, 2, &err, &hint)) << err;
  ASSERT_TRUE(q4.load(convert(WeightType::kQ4), RunOptions{}, 2, &err, &hint)) << err;
  PerplexityResult r8, r4;
  ASSERT_TRUE(evaluate_perplexity(q8, &f32, text, &r8, &err)) << err;
  ASSERT_TRUE(evaluate_perplexity(q4, &f32, text, &r4, &err)) << err;
  const double d8 = r8.perplexity / r8.ref_perplexity - 1,
               d4 = r4.perplexity / r4.ref_perplexity - 1;
  std::printf(
      "stories260K on %llu predictions: f32 ppl %.4f | q8 %.4f (%+.2f%%, KL %.5f, top-1 %.1f%%) | "
      "q4 %.4f (%+.2f%%, KL %.5f, top-1 %.1f%%)\n",
      (unsigned long long)r8.predictions, r8.ref_perplexity, r8.perplexity, 100 * d8, r8.mean_kl,
      100 * r8.top1_agreement, r4.perplexity, 100 * d4, r4.mean_kl, 100 * r4.top1_agreement);
  EXPECT_GT(r8.predictions, 5000u);
  EXPECT_LT(std::fabs(d8), 0.01);
  EXPECT_LT(d4, 0.16);
  EXPECT_GT(r8.top1_agreement, r4.top1_agreement - 0.001);  // more bits, closer to f32
}

// int8 KV cache (a scale per head vector): perplexity within 1% of the fp32 KV cache on the
// same weights (issue 9 item 5), on q8 and f32 weights.
TEST_F(RealModel, Int8KvPerplexityWithinOnePercentOfFp32Kv) {
  std::string eval = std::string(std::getenv("LLMWIRE_EVAL") ? std::getenv("LLMWIRE_EVAL") : "");
  if (eval.empty()) eval = models + "/../eval/stories260K_samples.txt";
  const std::string text = llmwire::test::read_file(eval);
  if (text.empty()) GTEST_SKIP() << "no evaluation text at " << eval << " (set LLMWIRE_EVAL)";
  for (WeightType w : {WeightType::kF32, WeightType::kQ8}) {
    const std::string img = convert(w);
    RunOptions kv32, kv8;
    kv32.kv_override = kv8.kv_override = true;
    kv32.kv_type = KvType::kF32;
    kv8.kv_type = KvType::kI8;
    HostModel ref, i8;
    std::string err, hint;
    ASSERT_TRUE(ref.load(img, kv32, 2, &err, &hint)) << err;
    ASSERT_TRUE(i8.load(img, kv8, 2, &err, &hint)) << err;
    ASSERT_EQ(i8.model().kv_type(), KvType::kI8);
    PerplexityResult r;
    ASSERT_TRUE(evaluate_perplexity(i8, &ref, text, &r, &err)) << err;
    const double d = r.perplexity / r.ref_perplexity - 1;
    std::printf(
        "stories260K %s weights, %llu predictions: fp32 KV ppl %.4f, int8 KV %.4f "
        "(%+.3f%%, KL %.6f, top-1 %.2f%%)\n",
        weight_type_name(w), (unsigned long long)r.predictions, r.ref_perplexity, r.perplexity,
        100 * d, r.mean_kl, 100 * r.top1_agreement);
    EXPECT_GT(r.predictions, 5000u);
    EXPECT_LT(std::fabs(d), 0.01);
    EXPECT_GT(r.mean_kl, 0.0);  // the int8 cache really is in use
  }
}
