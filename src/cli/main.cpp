// llmwire: convert, inspect, split, plan and run Llama-family models for ESP32-S3 boards.
#include <cstdio>

#include "cli/commands.h"

namespace llmwire::cli {

void fail(const std::string& what, const std::string& hint, int code) {
  std::fprintf(stderr, "error: %s\n", what.c_str());
  if (!hint.empty()) std::fprintf(stderr, "  %s\n", hint.c_str());
  throw CLI::RuntimeError(code);
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
  CLI11_PARSE(app, argc, argv);
  return 0;
}
