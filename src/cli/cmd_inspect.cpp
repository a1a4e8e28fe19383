// llmwire inspect IMAGE: header, tensor table, checksum status and RAM needed.
#include <cinttypes>
#include <cstdio>

#include "cli/commands.h"
#include "engine/crc32c.h"
#include "engine/image.h"
#include "engine/kv_cache.h"
#include "engine/model.h"
#include "platform/host/mapped_file.h"
#include "tools/planner.h"

namespace llmwire::cli {
namespace {

// The name comes from the file: printable ASCII passes, anything else (terminal escape
// sequences, other control bytes, 8-bit bytes) is shown as \xNN.
std::string printable_name(const char* name) {
  std::string out;
  for (const char* p = name; *p; p++) {
    const unsigned char c = (unsigned char)*p;
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += (char)c;
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  return out;
}

void print_ram(const ImageInfo& info, KvType kv) {
  RunOptions o;
  o.kv_override = true;
  o.kv_type = kv;
  const uint32_t layers = info.layer_end - info.layer_begin;
  const size_t kv_bytes =
      KvCache::bytes(kv, layers, info.config.seq_len, info.config.kv_dim(), info.config.n_kv_heads);
  const MemoryNeeds need = Model::memory_needs(info, o);
  std::printf(
      "  KV cache %s: %10zu bytes (%.2f MB)  fast RAM (activations, scratch): %zu bytes  big RAM "
      "(KV, logits, attention): %zu bytes\n",
      kv_type_name(kv), kv_bytes, kv_bytes / 1e6, need.fast, need.big);
}

void run(const std::string& path) {
  MappedFile file;
  std::string err;
  if (!file.open(path, &err)) fail(err, "check the path");
  // Header first, so a damaged payload can still be described.
  ImageInfo info;
  Status s = decode_header(file.data(), file.size(), &info);
  if (s != Status::kOk) fail(path + ": " + status_message(s), status_hint(s));
  const ModelConfig& c = info.config;
  std::printf("image: %s\n", path.c_str());
  std::printf("  format version %u, %zu bytes on disk (header says %" PRIu64 ")\n", info.version,
              file.size(), info.file_size);
  std::printf("  model: %s  id %016" PRIx64 "\n",
              info.model_name[0] ? printable_name(info.model_name).c_str() : "(unnamed)",
              info.model_id);
  std::printf(
      "  dim %u  hidden %u  layers %u  heads %u  kv_heads %u  vocab %u  seq %u  head_size %u\n",
      c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads, c.vocab_size, c.seq_len,
      c.head_size());
  std::printf("  weights %s  group %u  kv cache default %s  norm_eps %g  rope_theta %g\n",
              weight_type_name(info.weight_type), info.group_size, kv_type_name(info.kv_type),
              (double)info.norm_eps, (double)info.rope_theta);
  if (info.weight_type != WeightType::kF32) {
    std::string how = info.quant_method & kQuantImportance
                          ? "calibrated, importance-weighted scales"
                          : "plain (squared-error scales)";
    if (info.quant_method & kQuantErrorComp) how += ", GPTQ-style error compensation";
    if (info.quant_method & kQuantMixed) how += ", mixed Q4/Q8 per matrix";
    std::printf("  quantization: %s", how.c_str());
    if (info.calib_tokens) {
      std::printf(" (%u calibration tokens, text CRC-32C %08x)", info.calib_tokens, info.calib_crc);
    }
    std::printf("\n");
  }
  std::printf("  classifier: %s\n", c.shared_classifier ? "shared with the embedding" : "separate");
  std::printf("  stage %u of %u, layers %s%s%s%s\n", info.stage_index, info.stage_count,
              layer_range_text(info.layer_begin, info.layer_end).c_str(),
              info.has(kFlagHasTokenizer) ? ", tokenizer" : "",
              info.has(kFlagHasEmbedding) ? ", embedding" : "",
              info.has(kFlagHasClassifier) ? ", classifier" : "");
  if (info.has(kFlagClassifierSlice)) {
    std::printf("  classifier split across the ring: this stage computes rows %u-%u of %u\n",
                info.cls_row_begin, info.cls_row_end - 1, c.vocab_size);
  }
  if (info.has(kFlagHasTokenizer)) {
    std::printf("  tokenizer: %u tokens, longest piece %u bytes, bos %u eos %u\n", c.vocab_size,
                info.tok_max_len, info.bos_id, info.eos_id);
  }
  const bool crc_ok =
      file.size() == info.file_size &&
      crc32c(file.data() + kHeaderSize, file.size() - kHeaderSize) == info.payload_crc;
  std::printf("  payload checksum (CRC-32C %08x): %s\n", info.payload_crc,
              crc_ok ? "OK" : "MISMATCH");

  Image image;
  s = image.open(file.data(), file.size(), true);
  if (s != Status::kOk) {
    std::string what = path + ": " + status_message(s);
    if (image.failed_tensor() >= 0)
      what += " (tensor " + std::to_string(image.failed_tensor()) + ")";
    fail(what, status_hint(s));
  }
  std::printf("\ntensors (%u):\n", image.tensor_count());
  std::printf("  %-4s %-14s %5s %-4s %8s %8s %10s %12s %12s\n", "#", "kind", "layer", "type",
              "rows", "cols", "row_bytes", "offset", "bytes");
  for (uint32_t i = 0; i < image.tensor_count(); i++) {
    const TensorView t = image.tensor(i);
    char layer[8] = "-";
    if (t.layer != kNoLayer) std::snprintf(layer, sizeof layer, "%u", t.layer);
    std::printf("  %-4u %-14s %5s %-4s %8u %8u %10u %12zu %12" PRIu64 "\n", i,
                tensor_kind_name(t.kind), layer, dtype_name(t.dtype), t.rows, t.cols, t.row_stride,
                (size_t)(t.data - image.data()), t.bytes());
  }
  std::printf("\nRAM needed at seq %u (weights stay in flash):\n", c.seq_len);
  print_ram(info, info.kv_type);
  for (KvType kv : {KvType::kF32, KvType::kF16, KvType::kI8}) {
    if (kv != info.kv_type) print_ram(info, kv);
  }
}

}  // namespace

void add_inspect_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "inspect", "Show an image's header, tensor table, checksum status and RAM needs");
  static std::string path;
  cmd->add_option("IMAGE", path, "llmwire image (whole model or stage)")->required();
  cmd->callback([] { run(path); });
}

}  // namespace llmwire::cli
