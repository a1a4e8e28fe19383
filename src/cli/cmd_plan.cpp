// llmwire plan IMAGE|CKPT --boards N: what fits on which boards, and how fast (estimated).
#include <cstdio>

#include "cli/commands.h"
#include "cli/plan_args.h"

namespace llmwire::cli {
namespace {

PlanArgs g_args;

void run() {
  ModelSizes sizes;
  std::string source;
  load_plan_model(g_args, &sizes, &source);
  BoardProfile board = resolve_board(g_args);
  PlanRequest req = plan_request(g_args, sizes);
  const Plan plan = make_plan(sizes, board, req);
  print_plan(sizes, board, req, plan, source);
  if (!plan.fits) throw CLI::RuntimeError(3);
}

}  // namespace

void add_plan_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("plan",
                                 "Plan a split over boards: flash and RAM fit, bytes streamed, "
                                 "link bytes, time estimate. Exits 3 when "
                                 "the model does not fit at the requested length (the plan shown "
                                 "is then for the longest that does)");
  add_plan_options(cmd, &g_args, true);
  cmd->callback([] { run(); });
}

}  // namespace llmwire::cli
