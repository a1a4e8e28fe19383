// llmwire: convert, inspect, split, plan and run Llama-family models for ESP32-S3 boards.
#include <cstdio>

#include "cli/commands.h"
#include "cli/validators.h"

namespace llmwire::cli {

void fail(const std::string& what, const std::string& hint, int code) {
  std::fprintf(stderr, "error: %s\n", what.c_str());
  if (!hint.empty()) std::fprintf(stderr, "  %s\n", hint.c_str());
  throw CLI::RuntimeError(code);
}

void load_model(const std::string& image, const std::string& kv, uint32_t seq, uint32_t threads,
                bool reference_kernels, HostModel* out, uint32_t prompt_batch) {
  RunOptions opts;
  opts.seq_len = seq;
  opts.prompt_batch = prompt_batch;
  opts.reference_kernels = reference_kernels;
  if (!kv.empty()) {
    opts.kv_override = true;
    opts.kv_type = kv_from_name(kv);
  }
  std::string err, hint;
  if (!out->load(image, opts, threads, &err, &hint)) fail(err, hint);
  // A head stage image has the tokenizer and classifier but only the last layers: run alone it
  // would print garbage.
  const ImageInfo& info = out->model().info();
  if (info.stage_count != 1) {
    fail(image + " is the image of stage " + std::to_string(info.stage_index) + " of " +
             std::to_string(info.stage_count) + " of a split model (" +
             (info.stage_index == 0 ? "the head, holding only the last layers" : "a worker") + ")",
         "run the whole-model image from 'llmwire convert', or all stage images with 'llmwire "
         "sim --images'");
  }
}

}  // namespace llmwire::cli

int main(int argc, char** argv) {
  CLI::App app{"llmwire: run Llama-architecture language models on ESP32-S3 boards"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "llmwire 0.1.0");
  llmwire::cli::add_convert_command(app);
  llmwire::cli::add_inspect_command(app);
  llmwire::cli::add_generate_command(app);
  llmwire::cli::add_synth_command(app);
  llmwire::cli::add_perplexity_command(app);
  llmwire::cli::add_logits_command(app);
  llmwire::cli::add_plan_command(app);
  llmwire::cli::add_split_command(app);
  llmwire::cli::add_stage_command(app);
  llmwire::cli::add_sim_command(app);
  llmwire::cli::add_demo_command(app);
  llmwire::cli::add_flash_plan_command(app);
  CLI11_PARSE(app, argc, argv);
  return 0;
}
