// llmwire logits IMAGE --tokens 1,2,3 -o OUT: raw float32 logits per position, for
// verification against independent implementations (tests/python).
#include <cstdio>
#include <vector>

#include "cli/commands.h"
#include "tools/host_model.h"

namespace llmwire::cli {
namespace {

struct Args {
  std::string image, out, kv;
  std::vector<int32_t> tokens;
  uint32_t threads = 1;
  bool reference = false;
};

void run(Args& a) {
  HostModel hm;
  load_model(a.image, a.kv, 0, a.threads, a.reference, &hm);
  const uint32_t vocab = hm.model().config().vocab_size;
  if (a.tokens.size() > hm.seq_len())
    fail("more tokens than the sequence length", "pass fewer tokens");
  FILE* f = std::fopen(a.out.c_str(), "wb");
  if (!f) fail("cannot create " + a.out);
  for (size_t i = 0; i < a.tokens.size(); i++) {
    if (a.tokens[i] < 0 || (uint32_t)a.tokens[i] >= vocab) {
      std::fclose(f);
      fail("token " + std::to_string(a.tokens[i]) + " is outside the vocabulary (0.." +
           std::to_string(vocab - 1) + ")");
    }
    const float* logits = nullptr;
    const Status s = hm.forward(a.tokens[i], (uint32_t)i, true, &logits);
    if (s != Status::kOk) {
      std::fclose(f);
      fail(status_message(s), status_hint(s));
    }
    std::fwrite(logits, sizeof(float), vocab, f);
  }
  if (std::fclose(f) != 0) fail("cannot write " + a.out);
}

}  // namespace

void add_logits_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "logits", "Write raw float32 logits (positions x vocab) for a token sequence");
  static Args a;
  cmd->add_option("IMAGE", a.image, "whole-model image")->required();
  cmd->add_option("--tokens", a.tokens, "comma-separated token ids")->required()->delimiter(',');
  cmd->add_option("-o,--output", a.out, "output file (little-endian float32)")->required();
  cmd->add_option("--threads", a.threads, "worker threads")
      ->default_val(1)
      ->check(CLI::Range(1u, 64u));
  cmd->add_option("--kv", a.kv, "KV cache type override")->check(CLI::IsMember({"f32", "f16"}));
  cmd->add_flag("--reference-kernels", a.reference, "use the scalar reference kernels");
  cmd->callback([] { run(a); });
}

}  // namespace llmwire::cli
