// llmwire logits IMAGE --tokens 1,2,3 -o OUT: raw float32 logits per position, for
// verification against independent implementations (tests/python).
#include <cstdio>
#include <vector>

#include "cli/commands.h"
#include "cli/validators.h"
#include "platform/host/output_file.h"
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
  if (a.tokens.size() > hm.seq_len()) {
    fail(std::to_string(a.tokens.size()) + " tokens are more than the image's sequence length " +
             std::to_string(hm.seq_len()),
         "pass at most " + std::to_string(hm.seq_len()) + " tokens");
  }
  // Every token is checked before the output is created, so a bad one leaves no file behind.
  for (const int32_t t : a.tokens) {
    if (t < 0 || (uint32_t)t >= vocab) {
      fail("token " + std::to_string(t) + " is outside the vocabulary (0.." +
               std::to_string(vocab - 1) + ")",
           "pass token ids from the image's tokenizer");
    }
  }
  OutputFile out;
  std::string err;
  if (!out.open(a.out, {a.image}, &err)) fail(err);
  for (size_t i = 0; i < a.tokens.size(); i++) {
    const float* logits = nullptr;
    const Status s = hm.forward(a.tokens[i], (uint32_t)i, true, &logits);
    if (s != Status::kOk) fail(status_message(s), status_hint(s));  // `out` removes the temp
    out.write(logits, sizeof(float) * vocab);
  }
  if (!out.commit(&err)) fail(err);
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
  cmd->add_option("--kv", a.kv, "KV cache type override")->check(kv_names());
  cmd->add_flag("--reference-kernels", a.reference, "use the scalar reference kernels");
  cmd->callback([] { run(a); });
}

}  // namespace llmwire::cli
