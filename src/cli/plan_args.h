// Options and printing shared by `plan` and `split` (both go through the one planner).
#pragma once

#include <string>

#include "cli/commands.h"
#include "tools/planner.h"

namespace llmwire::cli {

struct PlanArgs {
  std::string model;  // image or checkpoint
  uint32_t boards = 0;
  std::string board = "esp32s3-16mb";
  uint64_t partition = 0, psram = 0, sram = 0;
  uint32_t seq = 0;
  std::string kv;
  uint32_t baud = 460800;
  std::string quant = "q4";  // for checkpoints
  uint32_t group = 32;
  std::string layers;  // split --layers 0-2,3-5 (last range = head)
};

void add_plan_options(CLI::App* cmd, PlanArgs* a, bool for_plan);
// Reads sizes from an image, or from a checkpoint's header (+ --quant/--group).
void load_plan_model(const PlanArgs& a, ModelSizes* sizes, std::string* source);
BoardProfile resolve_board(const PlanArgs& a);
PlanRequest plan_request(const PlanArgs& a);
void print_plan(const ModelSizes& m, const BoardProfile& board, const PlanRequest& req,
                const Plan& plan, const std::string& source);

}  // namespace llmwire::cli
