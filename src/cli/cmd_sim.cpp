// llmwire sim: every stage in its own process, wires throttled to the baud rate, faults
// injected on the wire; prints the story, then a per-stage table.
#include <unistd.h>

#include <climits>
#include <cstdio>

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

void add_sim_options(CLI::App* cmd, SimOptions* o, std::string* reboot) {
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
                  "STAGE@TOKEN: power-cycle a worker when the head sends that generated token");
  cmd->add_option("--window", o->window, "prompt positions in flight (1 = no prompt pipelining)")
      ->default_val(4)
      ->check(CLI::Range(1u, 64u));
  cmd->add_option("--timeout-ms", o->timeout_ms,
                  "head's resend timeout, 1 to 600000 ms (default: from baud and model size)")
      ->check(CLI::Range(1u, 600000u));
  cmd->add_flag("--quiet", o->quiet, "do not stream the story (print only the table)");
}

void apply_reboot(const std::string& reboot, SimOptions* o) {
  if (reboot.empty()) return;
  unsigned st = 0, tok = 0;
  char extra;
  // Digits only: %u alone would read "-1" as 4294967295.
  const size_t at = reboot.find('@');
  const bool digits = at != std::string::npos && at > 0 && at + 1 < reboot.size() && at <= 4 &&
                      reboot.size() - at - 1 <= 9 &&
                      reboot.find_first_not_of("0123456789@") == std::string::npos;
  if (!digits || std::sscanf(reboot.c_str(), "%u@%u%c", &st, &tok, &extra) != 2) {
    fail("bad --reboot '" + reboot + "'", "write STAGE@TOKEN, e.g. --reboot 1@40");
  }
  o->reboot_stage = (int)st;
  o->reboot_token = tok;
}

namespace {
SimOptions g_opts;
std::string g_reboot;
}  // namespace

void add_sim_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "sim", "Simulate a ring of boards: one process per stage, throttled faulty wires");
  cmd->add_option("--images", g_opts.images, "stage images in ring order: stage 0 (head) first")
      ->required();
  add_sim_options(cmd, &g_opts, &g_reboot);
  cmd->callback([] {
    apply_reboot(g_reboot, &g_opts);
    if (g_opts.faults.stall_ms) g_opts.faults.stall_prob = 0.01;
    g_opts.exe = self_exe();
    std::string err;
    const int rc = run_sim(g_opts, &err);
    if (rc != 0) fail(err.empty() ? "the simulation failed" : err, "", rc);
  });
}

}  // namespace llmwire::cli
