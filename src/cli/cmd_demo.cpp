// llmwire demo --boards N: the whole story in one command — find the best real weights,
// convert, plan and split over N boards, and simulate the ring.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "cli/commands.h"
#include "cli/sim_args.h"
#include "engine/crc32c.h"
#include "platform/host/mapped_file.h"
#include "tools/convert.h"
#include "tools/planner.h"
#include "tools/split.h"

namespace llmwire::cli {
namespace {

struct Args {
  uint32_t boards = 2;
  std::string checkpoint, tokenizer, quant = "q4", board = "esp32s3-16mb", cache;
  SimOptions sim;
  std::vector<std::string> reboot;
};

bool exists(const std::string& p) {
  return access(p.c_str(), R_OK) == 0;
}

// CRC-32C of a file's bytes, as 8 hex digits ("" if it cannot be read). The demo's cache is
// keyed by what the checkpoint and tokenizer contain, not by their names or times.
std::string content_key(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return "";
  std::vector<uint8_t> buf(1 << 20);
  uint32_t crc = 0;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), f)) > 0)
    crc = crc32c_update(crc, buf.data(), n);
  const bool ok = !std::ferror(f);
  std::fclose(f);
  if (!ok) return "";
  char hex[16];
  std::snprintf(hex, sizeof hex, "%08x", crc);
  return hex;
}

// Best real weights: the biggest model found in $LLMWIRE_MODELS, ./models or models/ beside
// the build (stories42M > stories15M > stories260K); the repository ships stories260K.
bool find_weights(std::string* ckpt, std::string* tok, std::string* name, std::string* looked) {
  std::vector<std::string> dirs;
  if (const char* e = std::getenv("LLMWIRE_MODELS")) {
    if (*e) dirs.push_back(e);
  }
  dirs.push_back("models");
  const std::string exe = self_exe();
  const size_t slash = exe.find_last_of('/');
  if (slash != std::string::npos) dirs.push_back(exe.substr(0, slash) + "/../models");
  for (const std::string& d : dirs) *looked += (looked->empty() ? "" : ", ") + d;
  const std::pair<const char*, const char*> models[] = {{"stories42M", "tokenizer.bin"},
                                                        {"stories15M", "tokenizer.bin"},
                                                        {"stories260K", "tok512.bin"}};
  for (const auto& m : models) {
    for (const std::string& d : dirs) {
      if (exists(d + "/" + m.first + ".bin") && exists(d + "/" + m.second)) {
        *ckpt = d + "/" + m.first + ".bin";
        *tok = d + "/" + m.second;
        *name = m.first;
        return true;
      }
    }
  }
  return false;
}

void run(Args& a) {
  std::string name, looked;
  if (a.checkpoint.empty()) {
    if (!find_weights(&a.checkpoint, &a.tokenizer, &name, &looked)) {
      fail("no model weights found (looked in " + looked + ")",
           "run scripts/download_models.sh (fetches stories15M + tokenizer.bin, checksummed, into "
           "models/), "
           "or set LLMWIRE_MODELS to a folder holding stories15M.bin + tokenizer.bin "
           "(or stories260K.bin + tok512.bin), or pass --checkpoint and --tokenizer");
    }
  } else {
    if (a.tokenizer.empty()) fail("--checkpoint needs --tokenizer");
    name = a.checkpoint.substr(a.checkpoint.find_last_of('/') + 1);
    name = name.substr(0, name.find_last_of('.'));
  }
  if (a.cache.empty()) {
    const std::string exe = self_exe();
    a.cache = exe.substr(0, exe.find_last_of('/')) + "/demo-cache";
  }
  mkdir(a.cache.c_str(), 0755);
  const std::string ck_key = content_key(a.checkpoint), tok_key = content_key(a.tokenizer);
  if (ck_key.empty()) fail("cannot read " + a.checkpoint, "check the path");
  if (tok_key.empty()) fail("cannot read " + a.tokenizer, "check the path");
  const std::string img = a.cache + "/" + name + "-" + a.quant + "-" + ck_key + tok_key + ".img";
  std::fprintf(stderr, "== model: %s (%s)\n", a.checkpoint.c_str(), a.quant.c_str());
  if (!exists(img)) {
    ConvertOptions co;
    co.checkpoint_path = a.checkpoint;
    co.tokenizer_path = a.tokenizer;
    co.output_path = img;
    co.quant = a.quant == "q8"    ? WeightType::kQ8
               : a.quant == "f32" ? WeightType::kF32
                                  : WeightType::kQ4;
    ConvertReport rep;
    std::string err;
    std::fprintf(stderr, "== converting to %s\n", img.c_str());
    if (!convert_checkpoint(co, &rep, nullptr, &err)) fail(err);
  }
  MappedFile file;
  std::string err;
  if (!file.open(img, &err)) fail(err);
  Image image;
  const Status s = image.open(file.data(), file.size(), true);
  if (s != Status::kOk) fail(img + ": " + status_message(s), status_hint(s));
  ModelSizes sizes;
  if (!sizes_from_image(image, &sizes, &err)) fail(err);
  BoardProfile board;
  if (!find_profile(a.board, &board)) fail("unknown board profile " + a.board);
  const uint32_t layers = image.info().config.n_layers;
  if (a.boards > layers + 1) {
    fail(std::to_string(a.boards) + " boards are more than " + name + " can use: it has " +
             std::to_string(layers) + " layers, so at most " + std::to_string(layers + 1) +
             " boards (one layer each and a head)",
         "use --boards " + std::to_string(layers + 1) + " or fewer");
  }
  PlanRequest req;
  req.boards = a.boards;
  req.kv = image.info().kv_type;
  req.baud = a.sim.baud;
  const Plan plan = make_plan(sizes, board, req);
  if (plan.boards.empty()) fail(plan.advice);
  std::fprintf(stderr, "== split over %zu x %s (seq %u%s):", plan.boards.size(), board.name.c_str(),
               plan.seq_len, plan.fits ? "" : ", shortened to fit");
  std::vector<std::pair<uint32_t, uint32_t>> ranges;
  std::vector<std::string> paths;
  for (const BoardPlan& b : plan.boards) {
    ranges.push_back({b.layer_begin, b.layer_end});
    paths.push_back(img.substr(0, img.size() - 4) + "-" + std::to_string(plan.boards.size()) +
                    "b.stage" + std::to_string(b.stage) + ".img");
    std::fprintf(stderr, " stage %u layers %s;", b.stage,
                 layer_range_text(b.layer_begin, b.layer_end).c_str());
  }
  std::fprintf(stderr, "\n");
  std::vector<uint64_t> written;
  if (!split_image(image, ranges, plan.seq_len, plan.kv, paths, &written, &err)) fail(err);
  a.sim.images = paths;
  apply_reboot(a.reboot, &a.sim);
  if (a.sim.faults.stall_ms) a.sim.faults.stall_prob = 0.01;
  a.sim.exe = self_exe();
  std::fprintf(stderr, "== simulating the ring at %u baud (one process per board)\n\n", a.sim.baud);
  const int rc = run_sim(a.sim, &err);
  if (rc != 0) fail(err.empty() ? "the simulation failed" : err, "", rc);
}

}  // namespace

void add_demo_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "demo", "One command: find weights, convert, split over --boards N, and simulate the ring");
  static Args a;
  cmd->add_option("--boards", a.boards, "number of simulated boards")
      ->default_val(2)
      ->check(CLI::Range(1u, 16u));
  cmd->add_option("--checkpoint", a.checkpoint,
                  "llama2.c checkpoint (default: best found in $LLMWIRE_MODELS or models/)");
  cmd->add_option("--tokenizer", a.tokenizer, "tokenizer for --checkpoint");
  cmd->add_option("--quant", a.quant, "weight type")
      ->default_val("q4")
      ->check(CLI::IsMember({"q4", "q8", "f32"}));
  cmd->add_option("--board", a.board, "board profile for the plan")->default_val("esp32s3-16mb");
  cmd->add_option("--cache", a.cache,
                  "folder for the converted images (default: demo-cache beside the binary)");
  add_sim_options(cmd, &a.sim, &a.reboot);
  cmd->callback([] { run(a); });
}

}  // namespace llmwire::cli
