// llmwire generate IMAGE -p PROMPT: stream a story from one image on this PC.
#include <chrono>
#include <cstdio>
#include <vector>

#include "cli/commands.h"
#include "cli/validators.h"
#include "engine/generator.h"
#include "tools/host_model.h"

namespace llmwire::cli {
namespace {

// Prompt positions per pass over the weights (RunOptions::prompt_batch).
constexpr uint32_t kDefaultBatch = 32;
constexpr uint32_t kMaxSpeculate = 31;

struct Args {
  std::string image, prompt, kv;
  uint32_t steps = 256, threads = 1, seq = 0;
  uint32_t batch = kDefaultBatch, speculate = 0;
  float temperature = 1.0f, topp = 0.9f;
  uint64_t seed = 0;
  bool seed_set = false;
};

uint64_t now_us(void*) {
  return (uint64_t)std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void emit(void*, const char* s, size_t n) {
  std::fwrite(s, 1, n, stdout);
  std::fflush(stdout);
}

void run(Args& a) {
  HostModel hm;
  // A verification pass runs the current token and up to `speculate` guesses together.
  const uint32_t batch = a.batch > a.speculate + 1 ? a.batch : a.speculate + 1;
  load_model(a.image, a.kv, a.seq, a.threads, false, &hm, batch);
  if (!hm.has_tokenizer()) {
    fail(a.image + " has no tokenizer (it is a worker stage image)",
         "run generate on a whole-model image, or use 'llmwire sim' with all stage images");
  }
  std::vector<uint8_t> scratch(Sampler::scratch_bytes(hm.model().config().vocab_size));
  Sampler sampler;
  SamplerSettings ss;
  ss.temperature = a.temperature;
  ss.topp = a.topp;
  ss.seed = a.seed_set ? a.seed : (uint64_t)now_us(nullptr);
  Status s = sampler.init(hm.model().config().vocab_size, ss, scratch.data(), scratch.size());
  if (s != Status::kOk) fail(status_message(s));
  std::vector<int32_t> tokens(a.prompt.size() + 3 + a.steps);
  GenerateIo io;
  io.emit = emit;
  io.now_us = now_us;
  const uint32_t vocab = hm.model().config().vocab_size;
  std::vector<float> verify_logits((size_t)(a.speculate + 1) * vocab);
  GenerateSpeculation spec;
  spec.max_draft = a.speculate;
  spec.logits = verify_logits.data();
  spec.logits_len = verify_logits.size();
  GenerateStats st;
  size_t n = 0;
  s = generate(&hm, hm.tokenizer(), &sampler, a.prompt.data(), a.prompt.size(), a.steps,
               tokens.data(), tokens.size(), io, &st, &n, &spec);
  std::printf("\n");
  if (s != Status::kOk) fail(status_message(s), status_hint(s));
  const double prompt_s = st.prompt_us / 1e6, gen_s = st.generation_us / 1e6;
  const uint32_t after_first = st.generated_tokens > 0 ? st.generated_tokens - 1 : 0;
  std::fprintf(stderr,
               "---\nprompt: %u tokens in %.3f s (%.1f tok/s)  generated: %u tokens in %.3f s "
               "(%.1f tok/s)  threads %u  seed %llu\n",
               st.prompt_tokens, prompt_s, prompt_s > 0 ? st.prompt_tokens / prompt_s : 0.0,
               st.generated_tokens, gen_s, gen_s > 0 ? after_first / gen_s : 0.0, a.threads,
               (unsigned long long)ss.seed);
  // Every generated token costs one pass over the weights without speculation.
  const double per_token = st.generated_tokens ? (double)st.passes / st.generated_tokens : 0.0;
  if (a.speculate > 0) {
    std::fprintf(stderr,
                 "speculation: drafted %u, accepted %u (%.1f%%), weight passes per generated "
                 "token %.3f (%u passes)\n",
                 st.drafted, st.accepted, st.drafted ? 100.0 * st.accepted / st.drafted : 0.0,
                 per_token, st.passes);
  }
}

}  // namespace

void add_generate_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "generate", "Generate text from an image on this PC (same arithmetic as the board)");
  static Args a;
  cmd->add_option("IMAGE", a.image, "whole-model image from 'llmwire convert'")->required();
  cmd->add_option("-p,--prompt", a.prompt, "story opening (default: empty)");
  cmd->add_option("-n,--steps", a.steps, "maximum tokens to generate after the prompt")
      ->default_val(256)
      ->check(CLI::Range(1u, kMaxSteps));
  cmd->add_option("--temp", a.temperature, "temperature; 0 = greedy")
      ->default_val(1.0f)
      ->check(finite_range(0, 100));
  cmd->add_option("--topp", a.topp, "top-p (nucleus) cutoff; 1 = off")
      ->default_val(0.9f)
      ->check(finite_range(0, 1));
  cmd->add_option_function<uint64_t>(
         "--seed",
         [](const uint64_t& s) {
           a.seed = s;
           a.seed_set = true;
         },
         "random seed, 1 or more (default: time)")
      ->check(seed_range());
  cmd->add_option("--threads", a.threads, "worker threads for matmul rows and attention heads")
      ->default_val(1)
      ->check(CLI::Range(1u, 64u));
  cmd->add_option("--seq", a.seq, "shorter context than the image's (0 = image's)")->default_val(0);
  cmd->add_option("--kv", a.kv, "KV cache type override")->check(kv_names());
  cmd->add_option("--batch", a.batch,
                  "prompt positions run together per pass over the weights (1 = token by token; "
                  "at least N+1 with --speculate N); the same tokens whatever the value")
      ->default_val(kDefaultBatch)
      ->check(CLI::Range(1u, kMaxPromptBatch));
  cmd->add_option("--speculate", a.speculate,
                  "prompt-lookup speculative decoding: guess up to N tokens by copying earlier "
                  "text, verify them in one pass (0 = off; same tokens when greedy, same "
                  "distribution when sampling, but a different story per seed than without)")
      ->default_val(0)
      ->check(CLI::Range(0u, kMaxSpeculate));
  cmd->callback([] { run(a); });
}

}  // namespace llmwire::cli
