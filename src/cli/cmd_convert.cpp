// llmwire convert CKPT TOKENIZER -o IMAGE [--quant q4|q8|f32] [--group 32] [--seq N]
//                 [--kv f32|f16|i8] [--name NAME] [--calib TEXT [--calib-tokens N] [--gptq]
//                 [--budget BYTES | --fit BOARD [--boards N]]] [--threads N]
#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <map>

#include "cli/commands.h"
#include "cli/validators.h"
#include "tools/convert.h"
#include "tools/planner.h"
#include "tools/selftest_digest.h"

namespace llmwire::cli {
namespace {

// The reference ESP32-S3 16 MB layout's model partition (0xE00000 at 0x1F0000); the planner's
// profile is used when it has one.
constexpr uint64_t kReferencePartition = 14680064;

struct Args {
  std::string checkpoint, tokenizer, output, quant = "q4", kv = "f32", name;
  uint32_t group = 32;
  uint32_t seq = 0;
  std::string calib;
  uint64_t calib_tokens = 16384;
  bool gptq = false;
  uint64_t budget = 0;
  std::string fit;
  uint32_t boards = 1;
  unsigned threads = 0;
};

std::string with_commas(uint64_t v) {
  std::string s = std::to_string(v);
  for (int i = (int)s.size() - 3; i > 0; i -= 3) s.insert((size_t)i, ",");
  return s;
}

void run(const Args& a) {
  static const std::map<std::string, WeightType> quants = {
      {"f32", WeightType::kF32}, {"q8", WeightType::kQ8}, {"q4", WeightType::kQ4}};
  ConvertOptions o;
  o.checkpoint_path = a.checkpoint;
  o.tokenizer_path = a.tokenizer;
  o.output_path = a.output;
  o.quant = quants.at(a.quant);  // CLI::IsMember checked it
  o.group = a.group;
  o.seq_len = a.seq;
  o.kv = kv_from_name(a.kv);
  o.model_name = a.name;
  o.calib_path = a.calib;
  o.calib_max_tokens = a.calib_tokens;
  o.error_compensation = a.gptq;
  o.budget_bytes = a.budget;
  o.fit_board = a.fit;
  o.fit_boards = a.boards;
  o.threads = a.threads;
  if (a.name.size() > 31)
    fail("--name is " + std::to_string(a.name.size()) + " bytes long",
         "the image stores at most 31 bytes of name");

  const bool tty = isatty(fileno(stderr)) != 0;
  int last_decile = -1;
  std::string last_what;
  auto progress = [&](uint64_t done, uint64_t total, const char* what) {
    const int pct = total ? (int)(100 * done / total) : 100;
    // Calibration and the sensitivity pass are phases of their own, each from 0 to 100%.
    const std::string w = what;
    const std::string phase =
        w == "calibration" || w == "sensitivity" || w == "KL" || w == "sequential" ? w
                                                                                   : "converting";
    if (phase != last_what) last_decile = -1;
    last_what = phase;
    if (phase == w) {
      what = phase == "calibration"   ? "running the f32 model over the text"
             : phase == "sensitivity" ? "each matrix at Q4 and Q8"
             : phase == "sequential"  ? "fitting each matrix to the quantized inputs"
                                      : "of the model with each matrix changed";
    }
    if (tty) {
      std::fprintf(stderr, "\r%-12s %3d%%  %-28s", (phase + ":").c_str(), pct, what);
      if (done == total) std::fprintf(stderr, "\n");
      std::fflush(stderr);
    } else if (pct / 10 != last_decile) {
      last_decile = pct / 10;
      std::fprintf(stderr, "%-12s %3d%%  %s\n", (phase + ":").c_str(), pct, what);
    }
  };
  ConvertReport r;
  std::string err;
  if (!convert_checkpoint(o, &r, progress, &err)) {
    if (tty) std::fprintf(stderr, "\n");
    fail(err);
  }
  uint32_t digest = 0;  // what a one-board head's /selftest compares with
  if (!stamp_selftest_digest(a.output, &digest, &err)) fail(err);

  std::printf("wrote %s (%s, group %u, model id %016" PRIx64 ")\n", a.output.c_str(),
              a.quant.c_str(), o.quant == WeightType::kF32 ? 0 : o.group, r.model_id);
  if (r.calib.used) {
    std::printf("calibrated on %s: %" PRIu64 " tokens in %" PRIu64
                " chunks%s (%.1f%% raw-byte tokens), text CRC-32C %08x\n",
                a.calib.c_str(), r.calib.tokens, r.calib.chunks,
                r.calib.truncated ? ", the rest of the text unused (--calib-tokens)" : "",
                r.calib.tokens ? 100.0 * r.calib.byte_fallback_tokens / r.calib.tokens : 0.0,
                r.calib.text_crc);
    std::printf(
        "method: importance-weighted scales%s%s\n",
        !a.gptq              ? ""
        : r.calib.sequential ? ", GPTQ-style error compensation, sequential (each matrix fitted to "
                               "the inputs of the model quantized before it)"
                             : ", GPTQ-style error compensation",
        a.budget || !a.fit.empty()
            ? (", mixed precision: " + std::to_string(r.calib.q8_matrices) + " of " +
               std::to_string(r.calib.matrices) + " matrices Q8, chosen by " +
               (r.calib.measured_sensitivity ? "measured KL" : "weighted error") + " per byte")
                  .c_str()
            : "");
  }
  std::printf("\n%-22s %14s %14s %10s\n", "family", "params", "bytes", "MB");
  uint64_t sum = 0;
  for (const BudgetLine& l : r.lines) {
    std::printf("%-22s %14s %14s %10.3f%s%s\n", l.family.c_str(),
                l.params ? with_commas(l.params).c_str() : "-", with_commas(l.bytes).c_str(),
                l.bytes / 1e6, l.note.empty() ? "" : "  ", l.note.c_str());
    sum += l.bytes;
  }
  std::printf("%-22s %14s %14s %10.3f\n", "header+table+padding", "-",
              with_commas(r.image_bytes - sum).c_str(), (r.image_bytes - sum) / 1e6);
  std::printf("%-22s %14s %14s %10.3f\n", "total image", "", with_commas(r.image_bytes).c_str(),
              r.image_bytes / 1e6);
  std::printf("\nweight bytes read per generated token: %s (%.3f MB)\n",
              with_commas(r.weight_bytes_per_token).c_str(), r.weight_bytes_per_token / 1e6);

  uint64_t partition = kReferencePartition;
  BoardProfile board;
  if (find_profile("esp32s3-16mb", &board) && board.partition_bytes) {
    partition = board.partition_bytes;
  }
  std::printf("reference ESP32-S3 16 MB layout: model partition %s bytes (0x%" PRIX64
              " at 0x1F0000)\n",
              with_commas(partition).c_str(), partition);
  if (r.image_bytes <= partition) {
    std::printf("fits: yes, %s bytes spare\n", with_commas(partition - r.image_bytes).c_str());
  } else {
    std::printf(
        "fits: no, does NOT fit one board: %s bytes over — split it over boards (llmwire "
        "plan/split)%s\n",
        with_commas(r.image_bytes - partition).c_str(),
        o.quant == WeightType::kQ4 ? "" : " or use --quant q4");
  }
}

}  // namespace

void add_convert_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "convert",
      "Convert a llama2.c checkpoint (stories*.bin, legacy format) and its tokenizer.bin into "
      "an llmwire image for the board's model partition; prints the size budget and whether it "
      "fits the reference 16 MB board");
  static Args a;
  cmd->add_option("CKPT", a.checkpoint, "llama2.c legacy checkpoint, e.g. stories15M.bin")
      ->required();
  cmd->add_option("TOKENIZER", a.tokenizer,
                  "llama2.c tokenizer.bin with the model's vocabulary (tok512.bin for "
                  "stories260K, tokenizer.bin for the others)")
      ->required();
  cmd->add_option("-o,--output", a.output, "image file to write (replaced atomically)")->required();
  cmd->add_option("--quant", a.quant,
                  "weight type of the matrices: q4 (4-bit, fp16 scale per group), q8 (8-bit) or "
                  "f32; norm weights stay f32")
      ->default_val("q4")
      ->check(CLI::IsMember({"q4", "q8", "f32"}));
  cmd->add_option("--group", a.group,
                  "quantization group size for q4/q8: a multiple of 8 from 8 to 256 (ignored "
                  "for f32)")
      ->default_val(32);
  cmd->add_option("--seq", a.seq,
                  "context length the image is built for (sizes the KV cache); at most the "
                  "checkpoint's (default: the checkpoint's)")
      ->default_val(0);
  cmd->add_option("--kv", a.kv, "default KV cache type stored in the image: f32, f16 or i8")
      ->default_val("f32")
      ->check(kv_names());
  cmd->add_option("--name", a.name,
                  "model name stored in the image, at most 31 bytes (default: the checkpoint's "
                  "file name without extension)");
  cmd->add_option("--calib", a.calib,
                  "calibration text (UTF-8, documents separated by blank lines, in the model's "
                  "language): the f32 model is run over it and each group's scale minimises the "
                  "activation-weighted error (docs/QUANTIZATION.md). Never calibrate on the text "
                  "you evaluate on");
  cmd->add_option("--calib-tokens", a.calib_tokens,
                  "use at most this many tokens of the calibration text")
      ->default_val(16384)
      ->check(CLI::Range((uint64_t)64, (uint64_t)1 << 24));
  cmd->add_flag("--gptq", a.gptq,
                "with --calib: GPTQ-style error compensation within each row's groups (collects "
                "the input Gram matrices: slower, more memory); on small models (stories260K) "
                "sequential: each matrix is fitted to reproduce the f32 model's output from the "
                "inputs the model quantized before it gives it");
  cmd->add_option("--budget", a.budget,
                  "with --calib and --quant q4: image size limit in bytes; the matrices whose Q8 "
                  "encoding helps most per extra byte become Q8 while the image fits (--group 16 "
                  "is the other way to spend bytes: on stories260K better than more Q8, but the "
                  "kernels are slower; docs/QUANTIZATION.md)")
      ->default_val(0);
  cmd->add_option("--fit", a.fit,
                  "with --calib and --quant q4, instead of --budget: the limit is what the planner "
                  "fits on --boards boards of this profile (the profiles of `llmwire plan "
                  "--board`) at the model's context and --kv");
  cmd->add_option("--boards", a.boards, "with --fit: number of boards in the ring")
      ->default_val(1)
      ->check(CLI::Range(1u, 64u));
  cmd->add_option("--threads", a.threads, "threads for calibration and encoding (0: all cores)")
      ->default_val(0);
  cmd->callback([] { run(a); });
}

}  // namespace llmwire::cli
