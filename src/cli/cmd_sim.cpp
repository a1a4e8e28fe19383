// llmwire sim: every stage in its own process, wires throttled to the baud rate, faults
// injected on the wire; prints the story, then a per-stage table.
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <cstdlib>

#include "cli/commands.h"
#include "cli/sim_args.h"
#include "cli/validators.h"
#include "tools/sim.h"

namespace llmwire::cli {

std::string self_exe() {
  char buf[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return "llmwire";
  buf[n] = 0;
  return buf;
}

void add_sim_options(CLI::App* cmd, SimOptions* o, std::vector<std::string>* reboot) {
  cmd->add_option("-p,--prompt", o->prompt, "story opening");
  cmd->add_option("-n,--steps", o->steps, "maximum tokens to generate")
      ->default_val(256)
      ->check(CLI::Range(1u, kMaxSteps));
  cmd->add_option("--temp", o->temperature, "temperature (0 = greedy)")
      ->default_val(1.0f)
      ->check(finite_range(0, 100));
  cmd->add_option("--topp", o->topp, "top-p (nucleus) cutoff; 1 = off")
      ->default_val(0.9f)
      ->check(finite_range(0, 1));
  cmd->add_option("--seed", o->seed, "sampling seed, 1 or more (also seeds the wire faults)")
      ->default_val(1)
      ->check(seed_range());
  cmd->add_option("--baud", o->baud, "link speed of every wire")
      ->default_val(460800)
      ->check(CLI::Range(1200u, 20000000u));
  cmd->add_option("--ber", o->faults.ber, "bit error rate on every wire, e.g. 1e-4")
      ->default_val(0.0)
      ->check(CLI::Range(0.0, 0.01));
  cmd->add_option("--drop", o->faults.drop, "probability that a frame is lost")
      ->default_val(0.0)
      ->check(CLI::Range(0.0, 0.5));
  cmd->add_option("--dup", o->faults.dup, "probability that a frame arrives twice")
      ->default_val(0.0)
      ->check(CLI::Range(0.0, 0.5));
  cmd->add_option("--stall-ms", o->faults.stall_ms,
                  "stall the wire this long in the middle of 1% of frames (at most 60000)")
      ->default_val(0)
      ->check(CLI::Range(0u, 60000u));
  cmd->add_option("--reboot", *reboot,
                  "STAGE@TOKEN: power-cycle a worker when the head sends that generated token "
                  "(may be given several times)")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  cmd->add_option(
         "--window", o->window,
         "prompt chunks in flight (1 = no prompt pipelining; a chunk is --batch positions)")
      ->default_val(4)
      ->check(CLI::Range(1u, 64u));
  cmd->add_option("--batch", o->batch,
                  "prompt positions per chunk: every stage runs a chunk in one pass over its "
                  "weights (at most what a frame holds: 31 at dim 64, 7 at dim 288; 1 = position "
                  "by position)")
      ->default_val(1)
      ->check(CLI::Range(1u, kMaxPromptBatch));
  cmd->add_option("--timeout-ms", o->timeout_ms,
                  "head's resend timeout, 1 to 600000 ms (default: from baud and model size)")
      ->check(CLI::Range(1u, 600000u));
  cmd->add_flag("--quiet", o->quiet, "do not stream the story (print only the table)");
}

void apply_reboot(const std::vector<std::string>& reboots, SimOptions* o) {
  o->reboots.clear();
  for (const std::string& r : reboots) {
    // STAGE@TOKEN: two unsigned decimal numbers of sane size.
    const size_t at = r.find('@');
    const bool digits = at != std::string::npos && at > 0 && at < 3 && r.size() - at - 1 > 0 &&
                        r.size() - at - 1 < 8 &&
                        r.find_first_not_of("0123456789@") == std::string::npos &&
                        r.find('@', at + 1) == std::string::npos;
    if (!digits) fail("bad --reboot '" + r + "'", "write STAGE@TOKEN, e.g. --reboot 1@40");
    const unsigned st = (unsigned)std::stoul(r.substr(0, at));
    const unsigned tok = (unsigned)std::stoul(r.substr(at + 1));
    SimReboot sr;
    sr.stage = (int)st;
    sr.token = tok;
    o->reboots.push_back(sr);
  }
}

namespace {
SimOptions g_opts;
std::vector<std::string> g_reboot;
bool g_emulate = false;
std::string g_firmware;

// The firmware scripts/build_rv32.sh builds, next to this binary's build folder.
std::string default_firmware() {
  if (const char* e = std::getenv("LLMWIRE_RV32_ELF")) return e;
  const std::string exe = self_exe();
  const size_t slash = exe.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : exe.substr(0, slash);
  return dir + "/../build-rv32/llmwire-rv32.elf";
}
}  // namespace

void add_sim_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "sim", "Simulate a ring of boards: one process per stage, throttled faulty wires");
  cmd->add_option("--images", g_opts.images, "stage images in ring order: stage 0 (head) first")
      ->required();
  add_sim_options(cmd, &g_opts, &g_reboot);
  cmd->add_flag("--emulate", g_emulate,
                "run every stage on an emulated MCU (bare-metal rv32 under qemu-system-riscv32, "
                "image in flash, link on the UART); -p is typed on the head's console");
  cmd->add_option("--firmware", g_firmware,
                  "--emulate: the board firmware ELF (default: build-rv32/llmwire-rv32.elf from "
                  "scripts/build_rv32.sh, or $LLMWIRE_RV32_ELF)");
  cmd->add_flag("--icount", g_opts.icount,
                "--emulate: exact instruction counting (qemu -icount shift=0; slower)");
  cmd->add_option("--then", g_opts.console_after,
                  "--emulate: a further line typed on the head's console after the story "
                  "(repeatable; e.g. --then /stats)");
  cmd->add_option("--absent", g_opts.absent_stage, "--emulate: never power on this worker")
      ->group("");
  cmd->callback([] {
    apply_reboot(g_reboot, &g_opts);
    if (g_opts.faults.stall_ms) g_opts.faults.stall_prob = 0.01;
    g_opts.exe = self_exe();
    if (!g_emulate && (g_opts.icount || !g_opts.console_after.empty() || !g_firmware.empty() ||
                       g_opts.absent_stage >= 0)) {
      fail("--firmware, --icount, --then and --absent apply to emulated boards", "add --emulate");
    }
    if (g_emulate) g_opts.emulate_elf = g_firmware.empty() ? default_firmware() : g_firmware;
    std::string err;
    const int rc = run_sim(g_opts, &err);
    if (rc != 0) fail(err.empty() ? "the simulation failed" : err, "", rc);
  });
}

}  // namespace llmwire::cli
