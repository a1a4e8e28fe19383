// llmwire flash-plan STAGE_IMAGES... | --boards N: per board, the exact esptool commands
// (offsets from the firmware's partitions.csv) and the wiring table of the ring.
#include <cstdio>
#include <fstream>
#include <sstream>

#include "cli/commands.h"
#include "tools/flash_plan.h"
#include "tools/planner.h"

#ifndef LLMWIRE_FIRMWARE_DIR
#define LLMWIRE_FIRMWARE_DIR "firmware/esp32s3"
#endif

namespace llmwire::cli {
namespace {

std::vector<std::string> g_images;
uint32_t g_boards = 0;
std::string g_port_prefix = "PORT";
std::string g_firmware = LLMWIRE_FIRMWARE_DIR;

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot read " + path, "pass the firmware folder with --firmware DIR");
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void run() {
  if (g_images.empty() == (g_boards == 0)) {
    fail("give either the stage images or --boards N",
         "e.g. llmwire flash-plan model.stage0.img model.stage1.img");
  }
  std::vector<PartitionEntry> table;
  std::string err;
  if (!parse_partition_csv(slurp(g_firmware + "/partitions.csv"), &table, &err)) fail(err);
  const PartitionEntry* model = find_partition(table, "model");
  if (!model || !find_partition(table, "factory")) {
    fail(g_firmware + "/partitions.csv has no 'model' or no 'factory' partition");
  }
  LinkDefaults link;
  if (!parse_link_defaults(slurp(g_firmware + "/main/Kconfig.projbuild"), &link, &err)) fail(err);

  FlashPlanRequest req;
  req.port_prefix = g_port_prefix;
  req.firmware_dir = g_firmware;
  if (!g_images.empty()) {
    if (g_images.size() > 64) fail("at most 64 boards");
    if (!flash_plan_boards(g_images, model->size, &req.boards, &err)) fail(err);
  } else {
    if (g_boards > 64) fail("at most 64 boards");
    for (uint32_t k = 0; k < g_boards; k++) {
      req.boards.push_back(FlashPlanBoard{"STAGE" + std::to_string(k) + "_IMAGE", 0, k});
    }
  }
  const std::string text = format_flash_plan(req, table, link);
  std::fwrite(text.data(), 1, text.size(), stdout);
}

}  // namespace

void add_flash_plan_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "flash-plan",
      "Print the esptool commands for every board (offsets from the firmware's partitions.csv) "
      "and the wiring table of the ring");
  cmd->add_option("STAGE_IMAGES", g_images,
                  "the stage images of one 'llmwire split' (any order; checked and sorted)");
  cmd->add_option("--boards", g_boards, "no images yet: a plan for N boards with placeholders")
      ->check(CLI::Range(1, 64));
  cmd->add_option("--port-prefix", g_port_prefix,
                  "board k's serial port is PREFIX + k (e.g. /dev/ttyACM, COM)");
  cmd->add_option("--firmware", g_firmware, "the ESP-IDF project folder")->capture_default_str();
  cmd->callback([] { run(); });
}

}  // namespace llmwire::cli
