// llmwire perplexity IMAGE TEXTFILE [--ref IMAGE] [--kv f32|f16|i8] [--ref-kv f32|f16|i8]
#include <cstdio>
#include <fstream>
#include <sstream>

#include "cli/commands.h"
#include "cli/validators.h"
#include "tools/perplexity.h"

namespace llmwire::cli {
namespace {

struct Args {
  std::string image, text, ref, kv, ref_kv;
  uint32_t threads = 1;
};

void run(Args& a) {
  std::ifstream in(a.text, std::ios::binary);
  if (!in) fail("cannot open " + a.text, "check the path of the text file");
  std::stringstream ss;
  ss << in.rdbuf();
  HostModel model, ref;
  load_model(a.image, a.kv, 0, a.threads, false, &model);
  if (!a.ref.empty()) load_model(a.ref, a.ref_kv, 0, a.threads, false, &ref);
  std::string err;
  PerplexityResult r;
  auto progress = [](uint64_t done, uint64_t total) {
    std::fprintf(stderr, "\rscoring documents: %llu/%llu", (unsigned long long)done,
                 (unsigned long long)total);
    if (done == total) std::fprintf(stderr, "\n");
  };
  if (!evaluate_perplexity(model, a.ref.empty() ? nullptr : &ref, ss.str(), &r, &err, progress)) {
    fail(err);
  }
  std::printf("documents %llu  predictions %llu\n", (unsigned long long)r.documents,
              (unsigned long long)r.predictions);
  std::printf("perplexity %.4f\n", r.perplexity);
  if (!a.ref.empty()) {
    std::printf("reference perplexity %.4f  (%+.2f%%)\n", r.ref_perplexity,
                100.0 * (r.perplexity / r.ref_perplexity - 1.0));
    std::printf("mean KL(ref || image) %.6f nats  top-1 agreement %.2f%%\n", r.mean_kl,
                100.0 * r.top1_agreement);
  }
}

}  // namespace

void add_perplexity_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "perplexity",
      "Teacher-forced perplexity of a text file (documents separated by blank lines)");
  static Args a;
  cmd->add_option("IMAGE", a.image, "whole-model image")->required();
  cmd->add_option("TEXTFILE", a.text, "UTF-8 text")->required();
  cmd->add_option("--ref", a.ref,
                  "reference image (e.g. the f32 image): adds mean KL and top-1 agreement");
  cmd->add_option("--kv", a.kv, "KV cache type for IMAGE (default: the image's)")
      ->check(kv_names());
  cmd->add_option("--ref-kv", a.ref_kv, "KV cache type for --ref (default: that image's)")
      ->check(kv_names());
  cmd->add_option("--threads", a.threads, "worker threads")
      ->default_val(1)
      ->check(CLI::Range(1u, 64u));
  cmd->callback([] { run(a); });
}

}  // namespace llmwire::cli
