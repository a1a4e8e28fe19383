// Options and printing shared by `plan` and `split` (both go through the one planner).
#pragma once

#include <stdint.h>

#include <string>

#include "cli/commands.h"
#include "tools/planner.h"

namespace llmwire::cli {

struct PlanArgs {
  std::string model;  // image or checkpoint
  uint32_t boards = 0;
  std::string board = "esp32s3-16mb";
  static constexpr uint64_t kUnset = UINT64_MAX;  // --partition/--psram/--sram not given
  uint64_t partition = kUnset, psram = kUnset, sram = kUnset;
  uint32_t seq = 0;
  std::string kv;
  uint32_t baud = 460800;
  std::string quant = "q4";  // for checkpoints
  uint32_t group = 32;
  std::string layers;             // split --layers 0-2,3-5 (last range = head)
  std::string kernel = "scalar";  // plan --kernel: the cost figures' matmul kernel
  bool split_classifier = false;  // plan --split-classifier
  bool no_placement = false;      // plan --no-placement
  uint32_t pos = UINT32_MAX;      // plan --pos: estimate position (default seq / 2)
  bool greedy = false;            // plan --greedy
};

void add_plan_options(CLI::App* cmd, PlanArgs* a, bool for_plan);
// Reads sizes from an image, or from a checkpoint's header (+ --quant/--group).
void load_plan_model(const PlanArgs& a, ModelSizes* sizes, std::string* source);
BoardProfile resolve_board(const PlanArgs& a);
// --seq, --kv (default: the model's) and --boards checked against the model: refuses what the
// model cannot have (a longer context than it was built for, more boards than layers + 1).
PlanRequest plan_request(const PlanArgs& a, const ModelSizes& m);
void print_plan(const ModelSizes& m, const BoardProfile& board, const PlanRequest& req,
                const Plan& plan, const std::string& source);

}  // namespace llmwire::cli
