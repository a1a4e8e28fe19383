// Each `llmwire` subcommand registers itself on the app. A command's callback reports
// failure by throwing CLI::RuntimeError(exit_code) after printing what is wrong and what to do.
#pragma once

#include <CLI/CLI.hpp>

#include "tools/host_model.h"

namespace llmwire::cli {

void add_convert_command(CLI::App& app);
void add_inspect_command(CLI::App& app);
void add_generate_command(CLI::App& app);
void add_synth_command(CLI::App& app);
void add_perplexity_command(CLI::App& app);
void add_logits_command(CLI::App& app);
void add_plan_command(CLI::App& app);
void add_split_command(CLI::App& app);
void add_stage_command(CLI::App& app);
void add_sim_command(CLI::App& app);
void add_demo_command(CLI::App& app);
void add_flash_plan_command(CLI::App& app);

// Loads a whole-model image for `generate`, `logits` and `perplexity`: --kv ("" keeps the
// image's), --seq (0 keeps the image's), fails with the reader's message and hint.
void load_model(const std::string& image, const std::string& kv, uint32_t seq, uint32_t threads,
                bool reference_kernels, llmwire::HostModel* out, uint32_t prompt_batch = 1);

// Prints "error: <what>" and, when non-empty, "  <hint>" to stderr, then throws
// CLI::RuntimeError(code).
[[noreturn]] void fail(const std::string& what, const std::string& hint = "", int code = 1);

}  // namespace llmwire::cli
