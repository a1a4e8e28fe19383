#include "cli/plan_args.h"
#include "cli/validators.h"

#include <cstdio>
#include <cstring>

#include "platform/host/mapped_file.h"
#include "tools/checkpoint.h"

namespace llmwire::cli {

void add_plan_options(CLI::App* cmd, PlanArgs* a, bool for_plan) {
  if (for_plan) {
    cmd->add_option("MODEL", a->model,
                    "whole-model image, or a llama2.c checkpoint (sizes computed for --quant)")
        ->required();
    cmd->add_option("--boards", a->boards, "number of boards (default: the fewest that fit)")
        ->check(CLI::Range(1u, 65u));
    cmd->add_option("--quant", a->quant, "weight type assumed for a checkpoint")
        ->check(CLI::IsMember({"q4", "q8", "f32"}));
    cmd->add_option("--group", a->group, "group size assumed for a checkpoint")
        ->check(CLI::Range(8u, 256u));
    cmd->add_option("--kernel", a->kernel,
                    "matmul kernel of the estimate: scalar (counted on the emulated LX7) or pie "
                    "(an estimate until the PIE kernel is counted)")
        ->default_val("scalar")
        ->check(CLI::IsMember({"scalar", "pie"}));
    cmd->add_flag("--split-classifier", a->split_classifier,
                  "estimate with the classifier's rows split over every board, merged at the "
                  "head (shows the slices split --classifier-slices auto writes); greedy merges "
                  "the slices' max, sampling runs on the slices too (the split sampler: three "
                  "small-frame rounds)");
    cmd->add_option("--pos", a->pos,
                    "position the per-token estimate is for (default: seq / 2, the mean of a "
                    "full context); attention grows with it");
    cmd->add_flag("--greedy", a->greedy,
                  "estimate greedy decoding (arg max) instead of top-p sampling at the head");
    cmd->add_flag("--no-placement", a->no_placement,
                  "estimate with every weight read from flash (no copies into PSRAM/SRAM at "
                  "boot)");
  }
  std::string names;
  for (const BoardProfile& p : board_profiles()) names += (names.empty() ? "" : ", ") + p.name;
  cmd->add_option("--board", a->board, "board profile: " + names)->default_val("esp32s3-16mb");
  constexpr uint64_t kMaxBytes = 1ull << 32;  // 4 GB: far beyond any ESP32-S3 memory
  cmd->add_option("--partition", a->partition,
                  "custom: model partition bytes, 1 to 4 GB (overrides the profile)")
      ->check(CLI::Range((uint64_t)1, kMaxBytes));
  cmd->add_option("--psram", a->psram,
                  "custom: usable PSRAM bytes, 0 (none) to 4 GB (overrides the profile)")
      ->check(CLI::Range((uint64_t)0, kMaxBytes));
  cmd->add_option("--sram", a->sram,
                  "custom: usable internal SRAM bytes, 0 to 4 GB (overrides the profile)")
      ->check(CLI::Range((uint64_t)0, kMaxBytes));
  cmd->add_option("--seq", a->seq, "sequence length, at most the model's (default: the model's)");
  cmd->add_option("--kv", a->kv, "KV cache type (default: the image's)")->check(kv_names());
  cmd->add_option("--baud", a->baud, "link baud rate for the estimate")
      ->default_val(460800)
      ->check(CLI::Range(9600u, 10000000u));
}

static bool looks_like_image(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return false;
  char magic[8] = {};
  const size_t n = std::fread(magic, 1, 8, f);
  std::fclose(f);
  return n == 8 && std::memcmp(magic, kImageMagic, 8) == 0;
}

void load_plan_model(const PlanArgs& a, ModelSizes* sizes, std::string* source) {
  std::string err;
  if (looks_like_image(a.model)) {
    MappedFile file;
    if (!file.open(a.model, &err)) fail(err);
    Image image;
    const Status s = image.open(file.data(), file.size(), true);
    if (s != Status::kOk) fail(a.model + ": " + status_message(s), status_hint(s));
    if (!sizes_from_image(image, sizes, &err))
      fail(err, "pass the image made by 'llmwire convert'");
    *source = a.model + " (image, exact sizes)";
    return;
  }
  Checkpoint ck;
  if (!load_checkpoint(a.model, &ck, &err)) fail(err);
  const WeightType w = a.quant == "f32"  ? WeightType::kF32
                       : a.quant == "q8" ? WeightType::kQ8
                                         : WeightType::kQ4;
  *sizes = sizes_from_config(ck.config, w, a.group, KvType::kF32);
  *source = a.model + " (checkpoint; sizes computed for " + a.quant + ", tokenizer estimated)";
}

BoardProfile resolve_board(const PlanArgs& a) {
  BoardProfile b;
  if (!find_profile(a.board, &b)) {
    std::string names;
    for (const BoardProfile& p : board_profiles()) names += " " + p.name;
    fail("unknown board profile '" + a.board + "'",
         "known profiles:" + names + " (or give --partition/--psram/--sram)");
  }
  if (a.kernel == "pie") {
    b.cost = esp32s3_pie_figures();
    b.name += " (PIE kernel, estimated)";
  }
  const bool custom =
      a.partition != PlanArgs::kUnset || a.psram != PlanArgs::kUnset || a.sram != PlanArgs::kUnset;
  if (a.partition != PlanArgs::kUnset) b.partition_bytes = a.partition;
  if (a.psram != PlanArgs::kUnset) b.psram_bytes = a.psram;
  if (a.sram != PlanArgs::kUnset) b.sram_bytes = a.sram;
  if (custom) {
    b.name += " (custom)";
    b.description = "custom: partition " + std::to_string(b.partition_bytes) + " B, PSRAM " +
                    std::to_string(b.psram_bytes) + " B, SRAM " + std::to_string(b.sram_bytes) +
                    " B";
  }
  return b;
}

PlanRequest plan_request(const PlanArgs& a, const ModelSizes& m) {
  const ModelConfig& c = m.info.config;
  if (a.seq > c.seq_len) {
    fail("--seq " + std::to_string(a.seq) + " is longer than the " + std::to_string(c.seq_len) +
             " positions the model was built for",
         "use --seq " + std::to_string(c.seq_len) +
             " or less (re-convert with a longer --seq "
             "only if the checkpoint was trained for it)");
  }
  if (a.boards > c.n_layers + 1) {
    fail(std::to_string(a.boards) + " boards are more than this model can use: it has " +
             std::to_string(c.n_layers) + " layers, so at most " + std::to_string(c.n_layers + 1) +
             " boards (one layer each and a head)",
         "use --boards " + std::to_string(c.n_layers + 1) + " or fewer");
  }
  const uint32_t seq = a.seq ? a.seq : c.seq_len;
  if (a.pos != UINT32_MAX && a.pos >= seq) {
    fail("--pos " + std::to_string(a.pos) + " is past the context of " + std::to_string(seq) +
             " positions",
         "give a position from 0 to " + std::to_string(seq - 1));
  }
  PlanRequest r;
  r.boards = a.boards;
  r.seq_len = a.seq;
  r.kv = a.kv.empty() ? m.info.kv_type : kv_from_name(a.kv);
  r.baud = a.baud;
  r.place_weights = !a.no_placement;
  r.split_classifier = a.split_classifier;
  r.estimate_pos = a.pos;
  r.greedy = a.greedy;
  return r;
}

static std::string mb(uint64_t b) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f MB", b / 1e6);
  return buf;
}

static double ms(double s) {
  return s * 1e3;
}

// The cost model's per-stage breakdown: what each board reads, computes and sends per
// generated token, the time each part takes, and the ring's critical path.
static void print_estimate(const BoardProfile& board, const PlanRequest& req, const Plan& plan) {
  std::printf(
      "\nESTIMATE per generated token at position %u, %s (cost model, not a measurement; "
      "docs/PLANNER.md):\n",
      plan.estimate_pos, req.greedy ? "greedy" : "top-p sampling");
  std::printf("%-6s %9s %9s %9s %9s %9s %9s  %s\n", "stage", "flash", "PSRAM", "compute", "handoff",
              "board", "link", "bound by");
  for (const BoardPlan& b : plan.boards) {
    const BoardCost& g = b.gen;
    const char* what = g.compute_s >= g.memory_s() ? "compute" : "memory";
    std::printf("%-6s %6.1f ms %6.1f ms %6.1f ms %6.1f ms %6.1f ms %6.1f ms  %s\n",
                (std::to_string(b.stage) + (b.head ? "*" : "")).c_str(), ms(g.flash_s),
                ms(g.psram_s), ms(g.compute_s), ms(g.handoff_s), ms(g.board_s()), ms(g.link_s),
                what);
  }
  for (const BoardPlan& b : plan.boards) {
    const BoardCost& g = b.gen;
    std::printf(
        "  stage %u counts: weights flash %llu B, PSRAM %llu B, SRAM %llu B; KV read %llu B, "
        "written %llu B; logits in PSRAM %llu B; link %llu B in %u frame%s\n",
        b.stage, (unsigned long long)g.weight_flash, (unsigned long long)g.weight_psram,
        (unsigned long long)g.weight_sram, (unsigned long long)g.kv_read,
        (unsigned long long)g.kv_written, (unsigned long long)g.scratch_psram,
        (unsigned long long)g.link_bytes, g.link_frames, g.link_frames == 1 ? "" : "s");
    std::string macs;
    for (int k = 0; k < kKernelCount; k++) {
      if (!g.macs[k]) continue;
      macs += (macs.empty() ? "" : ", ") + std::string(kernel_name((MacKind)k)) + " " +
              std::to_string(g.macs[k]);
    }
    std::printf("    MACs: %s; %u calls split over %g cores\n", macs.c_str(), g.split_calls,
                board.cost.cores.value);
    std::string ops;
    for (int k = 0; k < kOpCount; k++) {
      if (!g.ops[k]) continue;
      ops += (ops.empty() ? "" : ", ") + std::string(op_name((OpKind)k)) + " " +
             std::to_string(g.ops[k]);
    }
    std::printf("    other work: %s\n", ops.c_str());
    std::printf(
        "    cycles: %.0f per generated token (sampling %.0f), %.0f per prompt token; "
        "classifier %.1f ms\n",
        g.cycles, g.sample_s * board.cost.clock_hz.value, b.prompt.cycles, ms(g.classifier_s));
  }
  for (const BoardPlan& b : plan.boards) {
    if (b.placement.tensors == 0 && !plan.classifier_split) continue;
    std::printf("  stage %u", b.stage);
    if (plan.classifier_split && b.classifier_end > b.classifier_begin) {
      std::printf(" classifier rows %u-%u;", b.classifier_begin, b.classifier_end - 1);
    } else if (plan.classifier_split) {
      std::printf(" no classifier rows;");
    }
    if (b.placement.tensors) {
      std::printf(
          " placement at boot: %u tensors copied, %s to PSRAM, %s to SRAM (classifier in %s)",
          b.placement.tensors, mb(b.placement.big_bytes).c_str(),
          mb(b.placement.fast_bytes).c_str(), weight_region_name(b.classifier_region));
    }
    std::printf("\n");
  }
  const size_t n = plan.boards.size();
  char path[320];
  if (n > 1 && plan.classifier_split) {
    std::snprintf(path, sizeof path,
                  "critical path: the layers board after board plus %zu hops, then the "
                  "classifier slices in parallel (activation sent round the ring, slice results "
                  "back)%s; %u baud",
                  n,
                  req.greedy ? ""
                             : ", then the split sampler: exponentials on every board at once, "
                               "their sum chained round the ring, top-p candidates back (first "
                               "batch only)",
                  req.baud);
  } else if (n > 1) {
    std::snprintf(path, sizeof path,
                  "critical path: the %zu boards one after another plus %zu hops; link share "
                  "%.1f%% at %u baud",
                  n, n, 100.0 * plan.link_share, req.baud);
  } else {
    std::snprintf(path, sizeof path, "one board, no link");
  }
  std::printf("generated token: %.0f ms = %.2f tok/s (%s)\n", ms(plan.token_s),
              plan.token_s > 0 ? 1.0 / plan.token_s : 0.0, path);
  std::printf(
      "prompt token:    %.0f ms = %.2f tok/s (no classifier%s)\n", ms(plan.prompt_token_s),
      plan.prompt_token_s > 0 ? 1.0 / plan.prompt_token_s : 0.0,
      n > 1 ? "; positions stream through the ring, so the boards work at the same time" : "");
  if (plan.prompt_tokens > 0 && plan.prompt_serial_s > 0) {
    std::printf(
        "prompt of %u tokens (estimate): %.0f ms in chunks of %u position%s (one pass over a "
        "stage's "
        "weights per chunk, stages on different chunks at once, classifier for the last token "
        "only) = %.3fx token by token (%.0f ms: each token through all layers and the "
        "classifier in turn); streamed position by position: %.0f ms = %.3fx\n",
        plan.prompt_tokens, ms(plan.prompt_s), plan.prompt_chunk, plan.prompt_chunk == 1 ? "" : "s",
        plan.prompt_s / plan.prompt_serial_s, ms(plan.prompt_serial_s), ms(plan.prompt_stream_s),
        plan.prompt_stream_s / plan.prompt_serial_s);
  }
  const CostFigures& f = board.cost;
  std::printf(
      "figures: flash %.1f MB/s, PSRAM %.1f MB/s, %g x %.0f MHz, cycles/MAC q4 %.2f q8 %.2f f32 "
      "%.1f attention %.0f/%.0f/%.0f (f32/f16/i8 KV); memory and compute add\n",
      f.flash_bw.value / 1e6, f.psram_bw.value / 1e6, f.cores.value, f.clock_hz.value / 1e6,
      f.cycles_per_mac[(int)MacKind::kMatmulQ4].value,
      f.cycles_per_mac[(int)MacKind::kMatmulQ8].value,
      f.cycles_per_mac[(int)MacKind::kMatmulF32].value,
      f.cycles_per_mac[(int)MacKind::kAttentionF32].value,
      f.cycles_per_mac[(int)MacKind::kAttentionF16].value,
      f.cycles_per_mac[(int)MacKind::kAttentionI8].value);
  std::printf(
      "  per operation: exp %.0f, sin/cos %.0f, quantized element %.1f, vector element %.0f, "
      "score %.0f, top-p row %.0f, matmul row %.0f, call %.0f%s\n",
      f.cycles_per_op[(int)OpKind::kExp].value, f.cycles_per_op[(int)OpKind::kSinCos].value,
      f.cycles_per_op[(int)OpKind::kQuantize].value, f.cycles_per_op[(int)OpKind::kVector].value,
      f.cycles_per_op[(int)OpKind::kScore].value, f.cycles_per_op[(int)OpKind::kSampleTopp].value,
      f.cycles_per_op[(int)OpKind::kMatmulRow].value,
      f.cycles_per_op[(int)OpKind::kMatmulCall].value,
      f.memory_timed ? "" : "; memory costs no time (emulated)");
}

void print_plan(const ModelSizes& m, const BoardProfile& board, const PlanRequest& req,
                const Plan& plan, const std::string& source) {
  const ModelConfig& c = m.info.config;
  std::printf("model: %s\n  dim %u, %u layers, vocab %u, %s weights, seq %u\n", source.c_str(),
              c.dim, c.n_layers, c.vocab_size, weight_type_name(m.info.weight_type), c.seq_len);
  std::printf("board: %s — %s\n  partition %llu B, PSRAM %llu B usable, SRAM %llu B usable\n",
              board.name.c_str(), board.description.c_str(),
              (unsigned long long)board.partition_bytes, (unsigned long long)board.psram_bytes,
              (unsigned long long)board.sram_bytes);
  if (plan.boards.empty()) {
    std::printf("\nNOTHING FITS. %s\n", plan.advice.c_str());
    return;
  }
  std::printf("\nplan: %zu board%s, seq %u, KV %s%s\n", plan.boards.size(),
              plan.boards.size() > 1 ? "s" : "", plan.seq_len, kv_type_name(plan.kv),
              plan.fits ? "" : "  (NOT at the requested length — see below)");
  std::printf("%-6s %-9s %-22s %-22s %-12s %-12s %-12s\n", "stage", "layers", "image / partition",
              "PSRAM used / usable", "SRAM used", "weights/tok", "link B/tok");
  for (const BoardPlan& b : plan.boards) {
    char img[40], ram[40];
    const std::string layers = layer_range_text(b.layer_begin, b.layer_end);
    std::snprintf(img, sizeof img, "%s%s", mb(b.image_bytes).c_str(), b.fits_flash ? "" : " OVER");
    std::snprintf(ram, sizeof ram, "%s%s", mb(b.psram_used).c_str(), b.fits_ram ? "" : " OVER");
    std::printf("%-6s %-9s %-22s %-22s %-12s %-12s %-12llu\n",
                (std::to_string(b.stage) + (b.head ? "*" : "")).c_str(), layers.c_str(), img, ram,
                mb(b.sram_used).c_str(), mb(b.weight_bytes_per_token).c_str(),
                (unsigned long long)b.link_bytes_per_token);
    std::printf("       KV cache %s, activations+scratch %llu B, link buffers %llu B\n",
                mb(b.kv_bytes).c_str(), (unsigned long long)b.activation_bytes,
                (unsigned long long)b.link_buffer_bytes);
  }
  std::printf(
      "  * stage 0 is the head: tokenizer, embedding, classifier, sampling; it runs the last "
      "layers.\n");
  if (plan.boards.size() > 1) {
    std::string ring = "0";
    for (size_t k = 1; k < plan.boards.size(); k++) ring += " -> " + std::to_string(k);
    std::printf(
        "  Ring (each TX to the next RX): %s -> 0; layers run in stage order 1..%zu, then the "
        "head.\n",
        ring.c_str(), plan.boards.size() - 1);
  }
  print_estimate(board, req, plan);
  std::printf("largest sequence length this split fits: %u (KV %s)\n", plan.max_seq,
              kv_type_name(plan.kv));
  if (!plan.advice.empty()) std::printf("\n%s\n", plan.advice.c_str());
  if (!plan.fits && plan.advice.empty())
    std::printf("\nthis split does not fit the board (see OVER above)\n");
}

}  // namespace llmwire::cli
