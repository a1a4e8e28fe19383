// llmwire plan IMAGE|CKPT --boards N: what fits on which boards, and how fast (estimated).
#include <cstdio>

#include "cli/commands.h"
#include "cli/plan_args.h"
#include "tools/classifier_slices.h"

namespace llmwire::cli {
namespace {

PlanArgs g_args;
std::string g_cls;  // --classifier-slices

void run() {
  ModelSizes sizes;
  std::string source;
  load_plan_model(g_args, &sizes, &source);
  BoardProfile board = resolve_board(g_args);
  PlanRequest req = plan_request(g_args, sizes);
  if (!g_args.layers.empty()) {
    std::string err;
    if (!parse_layer_ranges(g_args.layers, sizes.info.config.n_layers, &req.forced, &err)) {
      fail(err,
           "example for 6 layers on 2 boards: --layers 0-2,3-5 (the last range runs on the head)");
    }
    if (g_args.boards != 0 && g_args.boards != req.forced.size()) {
      fail("--boards " + std::to_string(g_args.boards) + " and --layers " + g_args.layers +
               " disagree",
           "give --layers alone (one range per board), or --boards alone");
    }
  }
  if (!g_cls.empty()) {
    const uint32_t n = req.forced.empty() ? g_args.boards : (uint32_t)req.forced.size();
    std::string err;
    if (!parse_classifier_rows(g_cls, sizes.info.config.vocab_size, n, &req.classifier_rows,
                               &err)) {
      fail(err, "give even or one row count per board, head first, with --boards or --layers");
    }
    req.split_classifier = true;
  }
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
  cmd->add_option("--layers", g_args.layers,
                  "evaluate these layer ranges instead of choosing, in layer order, e.g. 0-2,3-4; "
                  "the LAST range runs on the head, as for split");
  cmd->add_option("--classifier-slices", g_cls,
                  "estimate with these classifier rows per board instead of the planner's "
                  "choice: even, or counts head first (e.g. 256,128,128); implies "
                  "--split-classifier");
  cmd->callback([] { run(); });
}

}  // namespace llmwire::cli
