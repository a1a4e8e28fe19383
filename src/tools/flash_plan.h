// `llmwire flash-plan`: what to type to put a ring on real boards — per board the esptool
// commands (offsets parsed from the firmware's partitions.csv) and the wiring table (link
// pins from the firmware's Kconfig defaults). docs/HARDWARE.md walks through the output.
#pragma once

#include <stdint.h>

#include <string>
#include <vector>

namespace llmwire {

// One row of an ESP-IDF partition table CSV.
struct PartitionEntry {
  std::string name, type, subtype;
  uint64_t offset = 0, size = 0;
};

// Parses ESP-IDF's partition CSV: '#' comments, blank lines, "name, type, subtype, offset,
// size[, flags]", numbers in hex or decimal with an optional K or M suffix. Every row needs
// an explicit offset; rows must not overlap. False with the line and the reason in *err.
bool parse_partition_csv(const std::string& text, std::vector<PartitionEntry>* out,
                         std::string* err);
const PartitionEntry* find_partition(const std::vector<PartitionEntry>& table,
                                     const std::string& name);

// The link settings a freshly built firmware uses (Kconfig.projbuild defaults).
struct LinkDefaults {
  int uart = 1, tx_pin = 17, rx_pin = 18, baud = 460800;
};
// Reads the `default` of LLMWIRE_LINK_UART_NUM, _TX_PIN, _RX_PIN and _BAUD.
bool parse_link_defaults(const std::string& kconfig_text, LinkDefaults* out, std::string* err);

struct FlashPlanBoard {
  std::string image;         // path as given (or a placeholder name)
  uint64_t image_bytes = 0;  // 0: unknown (placeholder)
  uint32_t stage = 0;
};

struct FlashPlanRequest {
  std::vector<FlashPlanBoard> boards;  // in stage order: boards[0] is the head
  std::string port_prefix = "PORT";    // board k's port is prefix + k
  std::string firmware_dir = "firmware/esp32s3";
  std::string app_name = "llmwire_esp32s3";  // the project name: build/<name>.bin
};

// Reads the images' headers: one model, stage indexes 0..n-1 each once, every image fits the
// partition. Fills `boards` in stage order. False with a sentence in *err.
bool flash_plan_boards(const std::vector<std::string>& images, uint64_t model_partition_bytes,
                       std::vector<FlashPlanBoard>* boards, std::string* err);

// The printed plan: firmware build, per-board commands, wiring table.
std::string format_flash_plan(const FlashPlanRequest& req, const std::vector<PartitionEntry>& table,
                              const LinkDefaults& link);

}  // namespace llmwire
