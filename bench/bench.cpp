// llmwire_bench: sizes and host speed per model, as a table and JSON. Numbers, not pass/fail.
//   llmwire_bench [--json FILE] [--tokens N] [--cache DIR] [--counts-only]
// Models: synthetic stories15M and stories42M shapes at q4 (random weights, same sizes and
// speed as the real ones), and the real stories260K from $LLMWIRE_MODELS when present.
// For the 15M/42M shapes it also reports the cost model's counted quantities per board and
// token on the esp32s3-16mb profile (bytes by memory region, KV bytes, MACs by kernel, link
// bytes and frames) and the estimate they give (--counts-only: only these, no host timing).
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "engine/generator.h"
#include "engine/kernels.h"
#include "platform/host/mapped_file.h"
#include "tools/convert.h"
#include "tools/host_model.h"
#include "tools/planner.h"
#include "tools/synth.h"

using namespace llmwire;

namespace {

// Prompt positions per batched pass through the layers (RunOptions::prompt_batch).
constexpr uint32_t kPromptBatch = 32;

struct Row {
  std::string model, quant;
  uint64_t image_bytes = 0, weight_bytes_per_token = 0;
  double tok_s_1 = 0, tok_s_2 = 0, prompt_tok_s_1 = 0, prompt_tok_s_2 = 0;
  uint32_t prompt_tokens = 0, gen_tokens = 0;
};

// CPU seconds used by this process (all threads): on a shared machine, tokens per CPU second
// shows a kernel's cost even when the wall clock mostly measures waiting for a core.
double cpu_s() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

bool exists(const std::string& p) {
  return access(p.c_str(), R_OK) == 0;
}

// Measures generation and prompt speed at `threads`; fills bytes-per-token too.
bool measure(const std::string& img, uint32_t threads, uint32_t tokens, Row* row, double* tok_s,
             double* prompt_tok_s) {
  HostModel hm;
  std::string err, hint;
  RunOptions opts;
  opts.prompt_batch = kPromptBatch;
  if (!hm.load(img, opts, threads, &err, &hint)) {
    std::fprintf(stderr, "bench: %s\n", err.c_str());
    return false;
  }
  const uint32_t vocab = hm.model().config().vocab_size;
  // Prompt: a fixed run of in-vocabulary ids (BOS first), fed without logits.
  const uint32_t np = std::min<uint32_t>(32, hm.seq_len() / 4);
  std::vector<int32_t> prompt(np);
  for (uint32_t i = 0; i < np; i++) prompt[i] = i == 0 ? 1 : (int32_t)((i * 7919u) % vocab);
  double t0 = now_s();
  if (hm.feed_prompt(prompt.data(), np) != Status::kOk) return false;
  *prompt_tok_s = np / (now_s() - t0);
  // Generation: greedy, full forward with classifier per token; count bytes on the way.
  const uint32_t ng = std::min<uint32_t>(tokens, hm.seq_len() - np - 1);
  hm.model().reset_counters();
  int32_t tok = prompt[np - 1];
  t0 = now_s();
  for (uint32_t i = 0; i < ng; i++) {
    const float* logits = nullptr;
    if (hm.forward(tok, np - 1 + i, true, &logits) != Status::kOk) return false;
    tok = argmax(logits, vocab);
  }
  *tok_s = ng / (now_s() - t0);
  row->weight_bytes_per_token = hm.model().weight_bytes_read() / ng;
  row->prompt_tokens = np;
  row->gen_tokens = ng;
  return true;
}

bool bench_image(const std::string& name, const std::string& quant, const std::string& img,
                 uint32_t tokens, std::vector<Row>* rows) {
  Row r;
  r.model = name;
  r.quant = quant;
  struct stat st;
  if (stat(img.c_str(), &st) != 0) return false;
  r.image_bytes = (uint64_t)st.st_size;
  if (!measure(img, 1, tokens, &r, &r.tok_s_1, &r.prompt_tok_s_1)) return false;
  if (!measure(img, 2, tokens, &r, &r.tok_s_2, &r.prompt_tok_s_2)) return false;
  rows->push_back(r);
  std::fprintf(stderr, "  %s %s: %.1f tok/s (1 thread), %.1f tok/s (2 threads)\n", name.c_str(),
               quant.c_str(), r.tok_s_1, r.tok_s_2);
  return true;
}

bool convert(const std::string& ckpt, const std::string& tok, const std::string& out,
             WeightType q) {
  if (exists(out)) return true;
  ConvertOptions o;
  o.checkpoint_path = ckpt;
  o.tokenizer_path = tok;
  o.output_path = out;
  o.quant = q;
  ConvertReport rep;
  std::string err;
  if (!convert_checkpoint(o, &rep, nullptr, &err)) {
    std::fprintf(stderr, "bench: convert %s: %s\n", ckpt.c_str(), err.c_str());
    return false;
  }
  return true;
}

// The cost model's counted quantities for `img` split over `boards` esp32s3-16mb boards.
void print_counts(const std::string& name, const std::string& img, uint32_t boards,
                  std::string* json) {
  MappedFile f;
  std::string err;
  Image im;
  ModelSizes m;
  if (!f.open(img, &err) || im.open(f.data(), f.size()) != Status::kOk ||
      !sizes_from_image(im, &m, &err)) {
    std::fprintf(stderr, "bench: %s: %s\n", img.c_str(), err.c_str());
    return;
  }
  BoardProfile board;
  find_profile("esp32s3-16mb", &board);
  PlanRequest r;
  r.boards = boards;
  const Plan p = make_plan(m, board, r);
  if (p.boards.empty()) {
    std::printf("%s on %u x esp32s3-16mb: does not fit\n\n", name.c_str(), boards);
    return;
  }
  std::printf(
      "%s on %u x esp32s3-16mb, seq %u%s, per generated token at position %u (estimate):\n"
      "  %-5s %12s %10s %10s %10s %10s %12s %10s %6s %9s %9s\n",
      name.c_str(), boards, p.seq_len, p.fits ? "" : " (longest that fits)", p.estimate_pos,
      "stage", "flash B", "PSRAM B", "SRAM B", "KV read", "KV write", "MACs", "link B", "frames",
      "board ms", "link ms");
  for (const BoardPlan& b : p.boards) {
    const BoardCost& g = b.gen;
    std::printf("  %-5u %12llu %10llu %10llu %10llu %10llu %12llu %10llu %6u %9.1f %9.1f\n",
                b.stage, (unsigned long long)g.weight_flash,
                (unsigned long long)(g.weight_psram + g.scratch_psram),
                (unsigned long long)g.weight_sram, (unsigned long long)g.kv_read,
                (unsigned long long)g.kv_written, (unsigned long long)g.total_macs(),
                (unsigned long long)g.link_bytes, g.link_frames, g.board_s() * 1e3, g.link_s * 1e3);
    char buf[640];
    std::snprintf(
        buf, sizeof buf,
        "  {\"model\": \"%s\", \"boards\": %u, \"seq\": %u, \"pos\": %u, \"stage\": "
        "%u, \"flash_B\": %llu, \"psram_weight_B\": %llu, \"psram_scratch_B\": %llu, "
        "\"sram_weight_B\": %llu, \"kv_read_B\": %llu, \"kv_written_B\": %llu, "
        "\"macs_matmul\": %llu, \"macs_attention\": %llu, \"link_B\": %llu, "
        "\"link_frames\": %u, \"board_ms\": %.2f, \"link_ms\": %.2f, "
        "\"token_ms\": %.2f, \"prompt_token_ms\": %.2f}",
        name.c_str(), boards, p.seq_len, p.estimate_pos, b.stage,
        (unsigned long long)g.weight_flash, (unsigned long long)g.weight_psram,
        (unsigned long long)g.scratch_psram, (unsigned long long)g.weight_sram,
        (unsigned long long)g.kv_read, (unsigned long long)g.kv_written,
        (unsigned long long)(g.macs[(int)MacKind::kMatmulQ4] + g.macs[(int)MacKind::kMatmulQ8] +
                             g.macs[(int)MacKind::kMatmulF32]),
        (unsigned long long)(g.macs[(int)MacKind::kAttentionF32] +
                             g.macs[(int)MacKind::kAttentionF16]),
        (unsigned long long)g.link_bytes, g.link_frames, g.board_s() * 1e3, g.link_s * 1e3,
        p.token_s * 1e3, p.prompt_token_s * 1e3);
    *json += (json->empty() ? "" : ",\n") + std::string(buf);
  }
  std::printf(
      "  (PSRAM B: weights placed in PSRAM + logits written and read; KV separately)\n"
      "  generated token %.0f ms (%.2f tok/s), prompt token %.0f ms (%.2f tok/s)\n\n",
      p.token_s * 1e3, 1.0 / p.token_s, p.prompt_token_s * 1e3, 1.0 / p.prompt_token_s);
}

// --kernels: every runnable kernel (and 2 threads on the best) side by side on one image,
// alternating rounds so a busy machine slows all configurations alike; medians and ratios.
struct KernelRun {
  std::string label;
  const char* kernel;
  uint32_t threads;
  std::unique_ptr<HostModel> hm;
  std::vector<double> gen, prompt, gen_cpu, prompt_cpu;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

bool one_round(KernelRun* k, uint32_t np, uint32_t ng) {
  HostModel& hm = *k->hm;
  const uint32_t vocab = hm.model().config().vocab_size;
  std::vector<int32_t> prompt(np);
  for (uint32_t i = 0; i < np; i++) prompt[i] = i == 0 ? 1 : (int32_t)((i * 7919u) % vocab);
  double t0 = now_s(), c0 = cpu_s();
  if (hm.feed_prompt(prompt.data(), np) != Status::kOk) return false;
  k->prompt.push_back(np / (now_s() - t0));
  k->prompt_cpu.push_back(np / (cpu_s() - c0));
  int32_t tok = prompt[np - 1];
  t0 = now_s();
  c0 = cpu_s();
  for (uint32_t i = 0; i < ng; i++) {
    const float* logits = nullptr;
    if (hm.forward(tok, np - 1 + i, true, &logits) != Status::kOk) return false;
    tok = argmax(logits, vocab);
  }
  k->gen.push_back(ng / (now_s() - t0));
  k->gen_cpu.push_back(ng / (cpu_s() - c0));
  return true;
}

bool compare_kernels(const std::string& name, const std::string& img, uint32_t tokens,
                     uint32_t rounds, bool with_reference, const std::string& only,
                     std::string* json) {
  std::vector<KernelRun> runs;
  uint32_t n = 0;
  const Kernel* table = kernel_table(&n);
  for (uint32_t i = 0; i < n; i++) {
    if (!table[i].available()) continue;
    if (!with_reference && std::strcmp(table[i].name, "reference") == 0) continue;
    if (!only.empty() &&
        ("," + only + ",").find(std::string(",") + table[i].name + ",") == std::string::npos)
      continue;
    runs.push_back(KernelRun{table[i].name, table[i].name, 1, nullptr, {}, {}, {}, {}});
  }
  const char* best = best_kernel()->name;
  runs.push_back(KernelRun{std::string(best) + " x2 threads", best, 2, nullptr, {}, {}, {}, {}});
  for (KernelRun& k : runs) {
    k.hm = std::make_unique<HostModel>();
    RunOptions o;
    o.kernel = k.kernel;
    o.prompt_batch = kPromptBatch;
    std::string err, hint;
    if (!k.hm->load(img, o, k.threads, &err, &hint)) {
      std::fprintf(stderr, "bench: %s\n", err.c_str());
      return false;
    }
  }
  const uint32_t seq = runs[0].hm->seq_len();
  const uint32_t np = std::min<uint32_t>(32, seq / 4);
  const uint32_t ng = std::min<uint32_t>(tokens, seq - np - 1);
  // One untimed round first (llama-bench warms up too): the first prompt otherwise pays the
  // page faults of the arena's first touch and cold caches.
  for (KernelRun& k : runs) {
    if (!one_round(&k, np, std::min<uint32_t>(ng, 4))) return false;
    k.gen.clear();
    k.prompt.clear();
    k.gen_cpu.clear();
    k.prompt_cpu.clear();
  }
  for (uint32_t r = 0; r < rounds; r++) {
    for (size_t i = 0; i < runs.size(); i++) {
      // Alternate the order too, so no configuration always runs right after another.
      KernelRun& k = runs[r % 2 ? runs.size() - 1 - i : i];
      if (!one_round(&k, np, ng)) return false;
    }
  }
  double base = 0, base_cpu = 0, one_thread_best = 0;
  for (const KernelRun& k : runs) {
    if (k.label == "scalar32") base = median(k.gen), base_cpu = median(k.gen_cpu);
    if (k.threads == 1 && k.label == best) one_thread_best = median(k.gen);
  }
  std::printf("\n%s: %u prompt tokens (batched), %u generated, %u rounds, medians\n", name.c_str(),
              np, ng, rounds);
  std::printf("  %-22s %9s %9s %11s %11s %12s %9s %11s\n", "kernel", "tok/s", "cpu tok/s",
              "vs scalar32", "(cpu time)", "vs 1 thread", "prompt", "prompt cpu");
  for (const KernelRun& k : runs) {
    const double g = median(k.gen), p = median(k.prompt);
    const double gc = median(k.gen_cpu), pc = median(k.prompt_cpu);
    char vs1[32] = "";
    if (k.threads > 1 && one_thread_best > 0)
      std::snprintf(vs1, sizeof vs1, "%.2fx", g / one_thread_best);
    std::printf("  %-22s %9.1f %9.1f %10.2fx %10.2fx %12s %9.1f %11.1f\n", k.label.c_str(), g, gc,
                base > 0 ? g / base : 0, base_cpu > 0 ? gc / base_cpu : 0, vs1, p, pc);
    char buf[512];
    std::snprintf(
        buf, sizeof buf,
        "  {\"model\": \"%s\", \"kernel\": \"%s\", \"threads\": %u, \"tok_s\": %.2f, "
        "\"tok_per_cpu_s\": %.2f, \"prompt_tok_s\": %.2f, \"prompt_tok_per_cpu_s\": %.2f, "
        "\"rounds\": %u},\n",
        name.c_str(), k.kernel, k.threads, g, gc, p, pc, rounds);
    *json += buf;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  std::string json_path, cache = "build/bench-cache";
  uint32_t tokens = 48, rounds = 5;
  bool counts_only = false, kernels_mode = false, with_reference = false;
  std::string quants = "q4,q8", only, shapes = "stories15M,stories42M";
  for (int i = 1; i < argc; i++) {
    if (!std::strcmp(argv[i], "--json") && i + 1 < argc)
      json_path = argv[++i];
    else if (!std::strcmp(argv[i], "--kernels"))
      kernels_mode = true;
    else if (!std::strcmp(argv[i], "--with-reference"))
      with_reference = true;
    else if (!std::strcmp(argv[i], "--rounds") && i + 1 < argc)
      rounds = (uint32_t)std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--quants") && i + 1 < argc)
      quants = argv[++i];
    else if (!std::strcmp(argv[i], "--only") && i + 1 < argc)
      only = argv[++i];
    else if (!std::strcmp(argv[i], "--shapes") && i + 1 < argc)
      shapes = argv[++i];
    else if (!std::strcmp(argv[i], "--tokens") && i + 1 < argc)
      tokens = (uint32_t)std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--cache") && i + 1 < argc)
      cache = argv[++i];
    else if (!std::strcmp(argv[i], "--counts-only"))
      counts_only = true;
    else {
      std::fprintf(stderr,
                   "usage: %s [--json FILE] [--tokens N] [--cache DIR] [--counts-only]\n"
                   "       %s --kernels [--rounds N] [--quants q4,q8,f32] [--with-reference]\n"
                   "         [--only kernel,...] [--shapes stories15M,stories42M]\n",
                   argv[0], argv[0]);
      return 2;
    }
  }
  mkdir(cache.c_str(), 0755);
  std::vector<Row> rows;
  std::string kernel_json;
  const char* env = std::getenv("LLMWIRE_MODELS");
  const std::string models = env ? env : "";
  std::string err, counts_json;

  for (const char* shape : {"stories15M", "stories42M"}) {
    if (("," + shapes + ",").find(std::string(",") + shape + ",") == std::string::npos) continue;
    ModelConfig c;
    shape_config(shape, &c);
    const std::string ckpt = cache + "/" + shape + "-synth.bin";
    std::string tok = models + "/tokenizer.bin";
    if (models.empty() || !exists(tok)) {
      tok = cache + "/synth-tokenizer-32000.bin";
      if (!exists(tok) && !synth_tokenizer(c.vocab_size, 1, tok, &err)) return 1;
    }
    std::fprintf(stderr, "bench: %s (synthetic weights)\n", shape);
    if (!exists(ckpt) && !synth_checkpoint(c, 1, ckpt, &err)) {
      std::fprintf(stderr, "bench: %s\n", err.c_str());
      return 1;
    }
    if (kernels_mode) {
      for (auto [q, qn] : {std::pair{WeightType::kQ4, "q4"}, std::pair{WeightType::kQ8, "q8"},
                           std::pair{WeightType::kF32, "f32"}}) {
        if (("," + quants + ",").find(std::string(",") + qn + ",") == std::string::npos) continue;
        const std::string img = cache + "/" + shape + "-synth-" + qn + ".img";
        if (!convert(ckpt, tok, img, q)) return 1;
        if (!compare_kernels(std::string(shape) + " " + qn, img, tokens, rounds, with_reference,
                             only, &kernel_json))
          return 1;
      }
      continue;
    }
    const std::string img = cache + "/" + shape + "-synth-q4.img";
    if (!convert(ckpt, tok, img, WeightType::kQ4)) return 1;
    const bool small = std::strcmp(shape, "stories15M") == 0;
    for (uint32_t n : {small ? 1u : 2u, small ? 2u : 3u})
      print_counts(std::string(shape) + " q4", img, n, &counts_json);
    if (!counts_only) bench_image(std::string(shape) + " (synthetic)", "q4", img, tokens, &rows);
  }
  if (counts_only) {
    std::printf("{\"cost_model\": [\n%s\n]}\n", counts_json.c_str());
    return 0;
  }
  if (kernels_mode) {
    if (kernel_json.size() >= 2) kernel_json.erase(kernel_json.size() - 2, 1);  // last comma
    kernel_json = "[\n" + kernel_json + "]\n";
    std::printf("\n%s", kernel_json.c_str());
    if (!json_path.empty()) {
      FILE* f = std::fopen(json_path.c_str(), "w");
      if (f) {
        std::fputs(kernel_json.c_str(), f);
        std::fclose(f);
      }
    }
    return 0;
  }
  if (!models.empty() && exists(models + "/stories260K.bin") && exists(models + "/tok512.bin")) {
    std::fprintf(stderr, "bench: stories260K (real weights)\n");
    for (auto [q, name] : {std::pair{WeightType::kQ4, "q4"}, std::pair{WeightType::kQ8, "q8"},
                           std::pair{WeightType::kF32, "f32"}}) {
      const std::string img = cache + "/stories260K-" + name + ".img";
      if (convert(models + "/stories260K.bin", models + "/tok512.bin", img, q)) {
        bench_image("stories260K", name, img, 200, &rows);
      }
    }
  } else {
    std::fprintf(
        stderr,
        "bench: LLMWIRE_MODELS has no stories260K.bin/tok512.bin: real-weight row skipped\n");
  }

  std::printf("%-24s %-5s %12s %16s %11s %11s %13s %13s\n", "model", "quant", "image_bytes",
              "weight_B/token", "tok/s@1", "tok/s@2", "prompt@1", "prompt@2");
  for (const Row& r : rows) {
    std::printf("%-24s %-5s %12llu %16llu %11.1f %11.1f %13.1f %13.1f\n", r.model.c_str(),
                r.quant.c_str(), (unsigned long long)r.image_bytes,
                (unsigned long long)r.weight_bytes_per_token, r.tok_s_1, r.tok_s_2,
                r.prompt_tok_s_1, r.prompt_tok_s_2);
  }
  std::string json = "[\n";
  for (size_t i = 0; i < rows.size(); i++) {
    const Row& r = rows[i];
    char buf[512];
    std::snprintf(
        buf, sizeof buf,
        "  {\"model\": \"%s\", \"quant\": \"%s\", \"image_bytes\": %llu, "
        "\"weight_bytes_per_token\": %llu, \"tok_s_1_thread\": %.2f, \"tok_s_2_threads\": %.2f, "
        "\"prompt_tok_s_1_thread\": %.2f, \"prompt_tok_s_2_threads\": %.2f, \"gen_tokens\": "
        "%u}%s\n",
        r.model.c_str(), r.quant.c_str(), (unsigned long long)r.image_bytes,
        (unsigned long long)r.weight_bytes_per_token, r.tok_s_1, r.tok_s_2, r.prompt_tok_s_1,
        r.prompt_tok_s_2, r.gen_tokens, i + 1 < rows.size() ? "," : "");
    json += buf;
  }
  json += "]\n";
  json = "{\"hosts\": " + json + ", \"cost_model\": [\n" + counts_json + "\n]}\n";
  std::printf("\n%s", json.c_str());
  if (!json_path.empty()) {
    FILE* f = std::fopen(json_path.c_str(), "w");
    if (f) {
      std::fputs(json.c_str(), f);
      std::fclose(f);
    }
  }
  return 0;
}
