// Options shared by `sim` and `demo`.
#pragma once

#include <string>
#include <vector>

#include "cli/commands.h"
#include "tools/sim.h"

namespace llmwire::cli {

std::string self_exe();
void add_sim_options(CLI::App* cmd, SimOptions* o, std::vector<std::string>* reboot);
void apply_reboot(const std::vector<std::string>& reboots, SimOptions* o);

}  // namespace llmwire::cli
