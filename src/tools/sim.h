// The host simulator: every stage in its own OS process, stage k's output piped through a
// relay that throttles it to the baud rate and injects faults on its way to stage k+1.
#pragma once

#include <stdint.h>

#include <string>
#include <vector>

#include "tools/wire_faults.h"

namespace llmwire {

// Power-cycle worker `stage` just before the head's activation for generated token `token`
// reaches it.
struct SimReboot {
  int stage = -1;
  uint32_t token = 0;
};

struct SimOptions {
  std::vector<std::string> images;  // ring order: stage 0 (head) first
  std::string prompt;
  uint32_t steps = 256;
  float temperature = 1.0f, topp = 0.9f;
  uint64_t seed = 1;
  uint32_t window = 4;
  uint32_t batch = 1;       // prompt positions per chunk and pass (stage --batch), every stage
  uint32_t timeout_ms = 0;  // 0: derived from baud and model size
  uint32_t baud = 460800;
  WireFaultConfig faults;
  std::vector<SimReboot> reboots;  // in any order; a stage may be rebooted more than once
  std::string exe;                 // path of the llmwire binary to run stages with
  bool quiet = false;              // no story streaming (tests read the summary)
  // Emulated boards (--emulate): every stage is a qemu-system-riscv32 running this firmware
  // ELF (scripts/build_rv32.sh) with its image in pflash; the relays join the qemus' UARTs.
  std::string emulate_elf;  // empty: host stage processes
  std::string qemu = "qemu-system-riscv32";
  bool icount = false;                     // -icount shift=0: exact instruction counts
  std::vector<std::string> console_after;  // lines typed on the head's console after the story
  int absent_stage = -1;                   // tests: this worker is never powered on
};

// Runs the simulation, streaming the story to stdout and then printing the per-stage table.
// Returns the head's exit status (0 on success); *err says why the simulator itself failed.
int run_sim(const SimOptions& opts, std::string* err);

}  // namespace llmwire
