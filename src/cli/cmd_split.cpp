// llmwire split IMAGE --boards N | --layers 0-2,3-5: one stage image per board.
#include <cstdio>

#include "cli/commands.h"
#include "cli/plan_args.h"
#include "platform/host/mapped_file.h"
#include "tools/classifier_slices.h"
#include "tools/cost_model.h"
#include "tools/split.h"

namespace llmwire::cli {
namespace {

PlanArgs g_args;
std::string g_image, g_outdir;
bool g_force = false;
std::string g_cls = "none";

// --classifier-slices into the plan request: the planner then chooses (auto) or takes (even,
// explicit counts) the rows, and its fit check counts every worker's slice.
void request_classifier_slices(const ModelSizes& sizes, uint32_t boards, PlanRequest* req) {
  if (g_cls == "none") return;
  if (boards < 2) fail("--classifier-slices " + g_cls + " needs at least 2 boards");
  req->split_classifier = true;
  req->greedy = true;  // what the split speeds up: the slices merge by arg max
  if (g_cls == "auto") return;
  std::string err;
  if (!parse_classifier_rows(g_cls, sizes.info.config.vocab_size, boards, &req->classifier_rows,
                             &err)) {
    fail(err, "give none, auto, even or one row count per board, head first, e.g. 256,256");
  }
}

// Rows per stage the plan chose (empty: the head keeps the whole classifier).
std::vector<uint32_t> classifier_rows(const Plan& plan) {
  std::vector<uint32_t> rows;
  if (g_cls == "none" || !plan.classifier_split) return rows;
  for (const auto& s : plan.classifier_slices) rows.push_back(s.second - s.first);
  if (g_cls == "auto" && !rows.empty() && rows[0] == plan.classifier_slices.back().second) {
    std::printf(
        "\nclassifier split: none (auto): the head computes every row sooner than a CLASSIFY "
        "frame reaches stage 1\n");
    rows.clear();
  }
  return rows;
}

void run() {
  MappedFile file;
  std::string err;
  if (!file.open(g_image, &err)) fail(err, "check the path");
  Image image;
  const Status s = image.open(file.data(), file.size(), true);
  if (s != Status::kOk) fail(g_image + ": " + status_message(s), status_hint(s));
  ModelSizes sizes;
  if (!sizes_from_image(image, &sizes, &err))
    fail(err, "split the whole-model image from 'llmwire convert'");
  const BoardProfile board = resolve_board(g_args);
  PlanRequest req = plan_request(g_args, sizes);
  if (!g_args.layers.empty()) {
    if (!parse_layer_ranges(g_args.layers, image.info().config.n_layers, &req.forced, &err)) {
      fail(err,
           "example for 6 layers on 2 boards: --layers 0-2,3-5 (the last range runs on the head)");
    }
    if (g_args.boards != 0 && g_args.boards != req.forced.size()) {
      fail("--boards " + std::to_string(g_args.boards) + " and --layers " + g_args.layers + " (" +
               std::to_string(req.forced.size()) + " boards) disagree",
           "give --layers alone (one range per board), or --boards alone");
    }
  } else if (g_args.boards == 0) {
    fail("say how to split: --boards N (the planner picks the layers) or --layers 0-2,3-5");
  }
  request_classifier_slices(sizes, req.forced.empty() ? g_args.boards : (uint32_t)req.forced.size(),
                            &req);
  Plan plan = make_plan(sizes, board, req);
  if (plan.boards.empty() && g_force && req.forced.empty()) {
    // --force: the planner's layer choice for these boards ignoring the board's limits, then
    // the plan on the real board (marked OVER where it does not fit).
    BoardProfile unlimited = board;
    unlimited.partition_bytes = unlimited.psram_bytes = unlimited.sram_bytes = 1ull << 62;
    const Plan any = make_plan(sizes, unlimited, req);
    PlanRequest forced = req;
    for (const BoardPlan& b : any.boards) forced.forced.push_back({b.layer_begin, b.layer_end});
    if (!forced.forced.empty()) plan = make_plan(sizes, board, forced);
  }
  print_plan(sizes, board, req, plan, g_image);
  if (plan.boards.empty() || (!plan.fits && !g_force)) {
    fail("refusing to write stage images that do not fit " + board.name,
         "see the plan above; use more boards, --seq, --kv f16, or --force to write them anyway");
  }
  std::vector<std::pair<uint32_t, uint32_t>> ranges;
  std::vector<std::string> paths;
  for (const BoardPlan& b : plan.boards) {
    ranges.push_back({b.layer_begin, b.layer_end});
    paths.push_back(stage_path(g_image, g_outdir, b.stage));
  }
  const std::vector<uint32_t> cls_rows = classifier_rows(plan);
  if (!cls_rows.empty()) {
    std::printf("\nclassifier split:");
    uint32_t r = 0;
    for (size_t k = 0; k < cls_rows.size(); k++) {
      if (cls_rows[k] == 0) {
        std::printf("%s stage %zu no rows", k ? "," : "", k);
      } else {
        std::printf("%s stage %zu rows %u-%u", k ? "," : "", k, r, r + cls_rows[k] - 1);
      }
      r += cls_rows[k];
    }
    const uint32_t dim = sizes.info.config.dim;
    std::printf("; %llu link bytes per greedy token",
                (unsigned long long)classifier_round_link_bytes(dim, cls_rows, false));
    if (sizes.info.config.shared_classifier) {
      std::printf(" (sampling: the head computes every row, it holds the embedding)\n");
    } else {
      std::printf(", %llu when sampling\n",
                  (unsigned long long)classifier_round_link_bytes(dim, cls_rows, true));
    }
  }
  std::vector<uint64_t> written;
  if (!split_image(image, ranges, plan.seq_len, plan.kv, paths, &written, &err, cls_rows))
    fail(err);
  std::printf("\nwrote %zu stage images:\n", paths.size());
  for (size_t i = 0; i < paths.size(); i++) {
    std::printf("  stage %zu: %-40s %10llu bytes  (%.1f%% of the %llu-byte partition)%s\n", i,
                paths[i].c_str(), (unsigned long long)written[i],
                100.0 * written[i] / board.partition_bytes,
                (unsigned long long)board.partition_bytes,
                written[i] > board.partition_bytes ? "  DOES NOT FIT" : "");
  }
  std::printf(
      "flash each with: python -m esptool --chip esp32s3 --port PORT write_flash 0x1F0000 IMAGE\n");
}

}  // namespace

void add_split_command(CLI::App& app) {
  auto* cmd =
      app.add_subcommand("split", "Split a whole-model image into one stage image per board");
  cmd->add_option("IMAGE", g_image, "whole-model image from 'llmwire convert'")->required();
  cmd->add_option("--boards", g_args.boards, "number of boards; the planner chooses the layers")
      ->check(CLI::Range(1u, 65u));
  cmd->add_option(
      "--layers", g_args.layers,
      "explicit layer ranges in layer order, e.g. 0-2,3-5; the LAST range runs on the head "
      "(stage 0), '-' for a head without layers");
  cmd->add_option("-o,--out-dir", g_outdir, "folder for the stage images (default: beside IMAGE)");
  cmd->add_option("--classifier-slices", g_cls,
                  "divide the classifier's rows over the boards: none (the head computes them "
                  "all), auto (the boards finish together), even, or rows per board, head first "
                  "(e.g. 256,256)")
      ->capture_default_str();
  cmd->add_flag("--force", g_force, "write the images even if the plan says they do not fit");
  add_plan_options(cmd, &g_args, false);
  cmd->callback([] { run(); });
}

}  // namespace llmwire::cli
