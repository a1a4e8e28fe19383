// Options shared by `sim` and `demo`.
#pragma once

#include <string>

#include "cli/commands.h"
#include "tools/sim.h"

namespace llmwire::cli {

std::string self_exe();
void add_sim_options(CLI::App* cmd, SimOptions* o, std::string* reboot);
void apply_reboot(const std::string& reboot, SimOptions* o);

}  // namespace llmwire::cli
