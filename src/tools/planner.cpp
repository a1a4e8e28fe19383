#include "tools/planner.h"

#include "runtime/stage.h"

#include <stdio.h>

#include <algorithm>
#include <cmath>

#include "engine/kv_cache.h"
#include "engine/model.h"

namespace llmwire {
namespace {

uint64_t align64(uint64_t v) {
  return (v + 63) & ~(uint64_t)63;
}

DType matrix_dtype(WeightType w) {
  return w == WeightType::kQ4 ? DType::kQ4 : (w == WeightType::kQ8 ? DType::kQ8 : DType::kF32);
}

uint64_t matrix_bytes(WeightType w, uint32_t group, uint32_t rows, uint32_t cols) {
  return (uint64_t)rows * row_stride_bytes(matrix_dtype(w), cols, group ? group : 1);
}

}  // namespace

const std::vector<BoardProfile>& board_profiles() {
  // Flash 25 MB/s: measured random 512-byte row reads from mapped QIO flash.
  // PSRAM 60.7 MB/s: octal PSRAM with 32-byte cache lines (two projects, measured).
  // 480 M MAC/s: both LX7 cores at 240 MHz, ~1 int8 MAC per cycle scalar (an assumption).
  // PSRAM/SRAM figures leave room for the firmware's own heap, stacks and drivers.
  static const std::vector<BoardProfile> profiles = {
      {"esp32s3-16mb",
       "ESP32-S3 N16R8: 16 MB flash (model partition 0xE00000 at 0x1F0000), 8 MB PSRAM", 0xE00000,
       8u * 1024 * 1024 - 256 * 1024, 300 * 1024, 25e6, 60.7e6, 480e6},
      {"esp32s3-8mb",
       "ESP32-S3 N8R2: 8 MB flash (model partition 0x600000 at 0x1F0000), 2 MB PSRAM", 0x600000,
       2u * 1024 * 1024 - 256 * 1024, 300 * 1024, 25e6, 60.7e6, 480e6},
      {"esp32s3-32mb",
       "ESP32-S3 N32R8: 32 MB flash (model partition 0x1E00000 at 0x1F0000), 8 MB PSRAM", 0x1E00000,
       8u * 1024 * 1024 - 256 * 1024, 300 * 1024, 25e6, 60.7e6, 480e6},
  };
  return profiles;
}

bool find_profile(const std::string& name, BoardProfile* out) {
  for (const BoardProfile& p : board_profiles()) {
    if (p.name == name) {
      *out = p;
      return true;
    }
  }
  return false;
}

uint64_t activation_frame_bytes(uint32_t dim) {
  // sync 2 + version 1 + type 1 + seq 2 + len 2 + (session 4, pos 4, epoch 2, dest 1, flags 1)
  // + dim floats + CRC-32C 4 (docs/PROTOCOL.md).
  return 8 + 12 + 4ull * dim + 4;
}

static void fill_macs(ModelSizes* s) {
  const ModelConfig& c = s->info.config;
  s->layer_macs = (uint64_t)c.dim * c.dim * 2 + (uint64_t)c.kv_dim() * c.dim * 2 +
                  (uint64_t)c.hidden_dim * c.dim * 3;
  s->classifier_macs = (uint64_t)c.vocab_size * c.dim;
}

bool sizes_from_image(const Image& image, ModelSizes* out, std::string* err) {
  const ImageInfo& info = image.info();
  if (info.stage_count != 1 || info.layer_begin != 0 || info.layer_end != info.config.n_layers) {
    *err = "this is a stage image (stage " + std::to_string(info.stage_index) + " of " +
           std::to_string(info.stage_count) + "); plan and split need the whole-model image";
    return false;
  }
  ModelSizes s;
  s.info = info;
  s.layer.assign(info.config.n_layers, 0);
  s.layer_tensors.assign(info.config.n_layers, {});
  for (uint32_t i = 0; i < image.tensor_count(); i++) {
    const TensorView t = image.tensor(i);
    const uint64_t b = t.bytes();
    switch (t.kind) {
      case TensorKind::kTokEmbedding:
        s.embedding = b;
        s.embedding_row = t.row_stride;
        break;
      case TensorKind::kClassifier:
        s.classifier = b;
        break;
      case TensorKind::kRmsFinal:
        s.rms_final = b;
        break;
      case TensorKind::kTokScores:
      case TensorKind::kTokOffsets:
      case TensorKind::kTokBytes:
      case TensorKind::kTokSorted:
        s.tokenizer += b;
        s.tokenizer_tensors.push_back(b);
        break;
      default:
        s.layer[t.layer] += b;
        s.layer_tensors[t.layer].push_back(b);
        break;
    }
  }
  fill_macs(&s);
  *out = s;
  return true;
}

ModelSizes sizes_from_config(const ModelConfig& c, WeightType w, uint32_t group, KvType kv) {
  ModelSizes s;
  s.info.config = c;
  s.info.weight_type = w;
  s.info.group_size = w == WeightType::kF32 ? 0 : group;
  s.info.kv_type = kv;
  s.info.flags = kFlagHasTokenizer | kFlagHasEmbedding | kFlagHasClassifier;
  s.info.layer_end = c.n_layers;
  s.embedding = matrix_bytes(w, group, c.vocab_size, c.dim);
  s.embedding_row = matrix_bytes(w, group, 1, c.dim);
  s.classifier = c.shared_classifier ? 0 : s.embedding;
  s.rms_final = 4ull * c.dim;
  const uint64_t sq = matrix_bytes(w, group, c.dim, c.dim);
  const uint64_t kvm = matrix_bytes(w, group, c.kv_dim(), c.dim);
  const uint64_t up = matrix_bytes(w, group, c.hidden_dim, c.dim);
  const uint64_t down = matrix_bytes(w, group, c.dim, c.hidden_dim);
  const std::vector<uint64_t> tensors = {4ull * c.dim, sq, kvm,  kvm, sq,
                                         4ull * c.dim, up, down, up};
  uint64_t layer = 0;
  for (uint64_t t : tensors) layer += t;
  s.layer.assign(c.n_layers, layer);
  s.layer_tensors.assign(c.n_layers, tensors);
  // scores, offsets, piece bytes (~5.6 bytes a piece in Llama 2's vocabulary), sorted ids.
  s.tokenizer_tensors = {4ull * c.vocab_size, 4ull * c.vocab_size + 4,
                         (uint64_t)(5.6 * c.vocab_size), 4ull * c.vocab_size};
  s.tokenizer = 0;
  for (uint64_t t : s.tokenizer_tensors) s.tokenizer += t;
  s.tokenizer_estimated = true;
  fill_macs(&s);
  return s;
}

static BoardPlan evaluate_board(const ModelSizes& m, const BoardProfile& board, uint32_t stage,
                                uint32_t stages, uint32_t lb, uint32_t le, uint32_t seq, KvType kv,
                                uint32_t baud) {
  const ModelConfig& c = m.info.config;
  BoardPlan b;
  b.stage = stage;
  b.head = stage == 0;
  b.layer_begin = lb;
  b.layer_end = le;
  // Image: header, table, then 64-byte aligned tensors in the converter's order.
  std::vector<uint64_t> parts;
  if (b.head) {
    parts = m.tokenizer_tensors;
    parts.push_back(m.embedding);
  }
  for (uint32_t l = lb; l < le; l++) {
    parts.insert(parts.end(), m.layer_tensors[l].begin(), m.layer_tensors[l].end());
  }
  if (b.head) {
    parts.push_back(m.rms_final);
    if (m.classifier) parts.push_back(m.classifier);
  }
  uint64_t pos = kHeaderSize + (uint64_t)kTensorEntrySize * parts.size();
  for (uint64_t p : parts) pos = align64(pos) + p;
  b.image_bytes = pos;

  // RAM: exactly what the stage runtime takes from each region at boot.
  ImageInfo si = m.info;
  si.config.seq_len = seq;
  si.layer_begin = lb;
  si.layer_end = le;
  si.stage_index = b.head ? 0 : 1;
  si.flags = b.head ? (kFlagHasTokenizer | kFlagHasEmbedding | kFlagHasClassifier) : 0;
  StageOptions so;
  so.run.kv_override = true;
  so.run.kv_type = kv;
  const MemoryNeeds need = Stage::memory_needs(si, so);
  b.kv_bytes = KvCache::bytes(kv, le - lb, seq, c.kv_dim());
  // The frame receiver's buffer lives in the runtime object itself (internal RAM).
  b.link_buffer_bytes = kMaxFrameSize;
  b.activation_bytes = need.fast;
  // The big region (KV cache, logits, attention scores) is PSRAM; the fast one internal SRAM
  // when it fits, else PSRAM too.
  uint64_t sram = need.fast + b.link_buffer_bytes;
  uint64_t psram = need.big;
  if (sram > board.sram_bytes) {
    psram += sram;
    sram = 0;
  }
  b.sram_used = sram;
  b.psram_used = psram;
  b.fits_flash = b.image_bytes <= board.partition_bytes;
  b.fits_ram = psram <= board.psram_bytes;

  // Per generated token.
  uint64_t weights = 0;
  for (uint32_t l = lb; l < le; l++) weights += m.layer[l];
  uint64_t macs = (uint64_t)(le - lb) * m.layer_macs;
  if (b.head) {
    weights += m.embedding_row + m.rms_final + (m.classifier ? m.classifier : m.embedding);
    macs += m.classifier_macs;
  }
  b.weight_bytes_per_token = weights;
  b.link_bytes_per_token = stages > 1 ? activation_frame_bytes(c.dim) : 0;
  const double kv_read = (double)KvCache::bytes(kv, le - lb, seq, c.kv_dim()) / 2.0;  // mean pos
  b.compute_s =
      std::max(weights / board.flash_bw, macs / board.macs_per_s) + kv_read / board.psram_bw;
  b.link_s = stages > 1 ? b.link_bytes_per_token * 10.0 / baud : 0.0;
  return b;
}

Plan evaluate_split(const ModelSizes& m, const BoardProfile& board, uint32_t seq, KvType kv,
                    uint32_t baud, const std::vector<std::pair<uint32_t, uint32_t>>& ranges) {
  Plan p;
  p.seq_len = seq;
  p.kv = kv;
  p.fits = true;
  const uint32_t n = (uint32_t)ranges.size();
  for (uint32_t s = 0; s < n; s++) {
    p.boards.push_back(
        evaluate_board(m, board, s, n, ranges[s].first, ranges[s].second, seq, kv, baud));
    const BoardPlan& b = p.boards.back();
    p.fits = p.fits && b.fits_flash && b.fits_ram;
    p.token_s += b.compute_s + b.link_s;
    p.link_share += b.link_s;
  }
  if (p.token_s > 0) p.link_share /= p.token_s;
  // Largest sequence length this split fits at (RAM grows with seq; flash does not).
  uint32_t lo = 0, hi = m.info.config.seq_len;
  while (lo < hi) {
    const uint32_t mid = lo + (hi - lo + 1) / 2;
    bool ok = true;
    for (uint32_t s = 0; s < n && ok; s++) {
      const BoardPlan b =
          evaluate_board(m, board, s, n, ranges[s].first, ranges[s].second, mid, kv, baud);
      ok = b.fits_flash && b.fits_ram;
    }
    if (ok)
      lo = mid;
    else
      hi = mid - 1;
  }
  p.max_seq = lo;
  return p;
}

// Best split into `n` boards at `seq`: minimises the slowest board's per-token cost subject to
// every board fitting. Workers (stages 1..n-1) take layers from 0 upwards in ring order, the
// head takes the last range (possibly empty). Dynamic programming over cut points.
static bool best_split(const ModelSizes& m, const BoardProfile& board, uint32_t n, uint32_t seq,
                       KvType kv, uint32_t baud, std::vector<std::pair<uint32_t, uint32_t>>* out) {
  const uint32_t L = m.info.config.n_layers;
  if (n == 0 || n - 1 > L) return false;
  const double kInf = 1e300;
  auto cost = [&](uint32_t stage, uint32_t a, uint32_t b, bool* fits) {
    const BoardPlan bp = evaluate_board(m, board, stage, n, a, b, seq, kv, baud);
    *fits = bp.fits_flash && bp.fits_ram;
    return bp.compute_s + bp.link_s;
  };
  // f[k][i]: best bottleneck with workers 1..k covering layers [0, i).
  std::vector<std::vector<double>> f(n, std::vector<double>(L + 1, kInf));
  std::vector<std::vector<uint32_t>> from(n, std::vector<uint32_t>(L + 1, 0));
  f[0][0] = 0;
  for (uint32_t k = 1; k < n; k++) {
    for (uint32_t i = k; i <= L; i++) {
      for (uint32_t j = k - 1; j < i; j++) {
        if (f[k - 1][j] >= kInf) continue;
        bool fits;
        const double c = cost(k, j, i, &fits);
        if (!fits) continue;
        const double v = std::max(f[k - 1][j], c);
        if (v < f[k][i]) {
          f[k][i] = v;
          from[k][i] = j;
        }
      }
    }
  }
  double best = kInf;
  uint32_t best_i = 0;
  for (uint32_t i = 0; i <= L; i++) {
    if (f[n - 1][i] >= kInf) continue;
    bool fits;
    const double c = cost(0, i, L, &fits);
    if (!fits) continue;
    const double v = std::max(f[n - 1][i], c);
    if (v < best - 1e-12) {
      best = v;
      best_i = i;
    }
  }
  if (best >= kInf) return false;
  out->assign(n, {0, 0});
  (*out)[0] = {best_i, L};
  uint32_t i = best_i;
  for (uint32_t k = n - 1; k >= 1; k--) {
    const uint32_t j = from[k][i];
    (*out)[k] = {j, i};
    i = j;
  }
  return true;
}

static std::string kv_name(KvType kv) {
  return kv == KvType::kF16 ? "f16" : "f32";
}

Plan make_plan(const ModelSizes& m, const BoardProfile& board, const PlanRequest& req) {
  const ModelConfig& c = m.info.config;
  const uint32_t seq = req.seq_len ? std::min(req.seq_len, c.seq_len) : c.seq_len;
  std::vector<std::pair<uint32_t, uint32_t>> ranges;
  if (!req.forced.empty()) return evaluate_split(m, board, seq, req.kv, req.baud, req.forced);
  const uint32_t max_boards = c.n_layers + 1;
  if (req.boards == 0) {
    for (uint32_t n = 1; n <= max_boards; n++) {
      if (best_split(m, board, n, seq, req.kv, req.baud, &ranges)) {
        Plan p = evaluate_split(m, board, seq, req.kv, req.baud, ranges);
        // What fewer boards would take: fp16 KV, or a shorter context.
        std::string also;
        if (req.kv == KvType::kF32) {
          for (uint32_t k = 1; k < n; k++) {
            std::vector<std::pair<uint32_t, uint32_t>> r;
            if (best_split(m, board, k, seq, KvType::kF16, req.baud, &r)) {
              also += " With --kv f16, " + std::to_string(k) + " boards fit at seq " +
                      std::to_string(seq) + ".";
              break;
            }
          }
        }
        for (uint32_t k = 1; k < n; k++) {
          std::vector<std::pair<uint32_t, uint32_t>> r;
          if (best_split(m, board, k, 1, req.kv, req.baud, &r)) {
            const Plan q = evaluate_split(m, board, 1, req.kv, req.baud, r);
            also += " " + std::to_string(k) +
                    " boards are enough for the weights (flash): they fit up to --seq " +
                    std::to_string(q.max_seq) + " with " + kv_name(req.kv) + " KV.";
            break;
          }
        }
        if (!also.empty()) p.advice = "Fewer boards:" + also;
        return p;
      }
    }
    // Nothing fits at this length: plan the longest seq that fits on any number of boards
    // (one layer per board gives the most room), on the fewest boards that hold it.
    uint32_t lo = 0, hi = seq;
    while (lo < hi) {
      const uint32_t mid = lo + (hi - lo + 1) / 2;
      std::vector<std::pair<uint32_t, uint32_t>> r;
      if (best_split(m, board, max_boards, mid, req.kv, req.baud, &r)) {
        lo = mid;
      } else {
        hi = mid - 1;
      }
    }
    Plan p;
    if (lo > 0) {
      for (uint32_t n = 1; n <= max_boards; n++) {
        if (best_split(m, board, n, lo, req.kv, req.baud, &ranges)) {
          p = evaluate_split(m, board, lo, req.kv, req.baud, ranges);
          break;
        }
      }
      p.fits = false;  // not at the requested seq
    }
    p.seq_len = lo;
    p.kv = req.kv;
    p.advice = "no number of " + board.name + " boards holds this model at seq " +
               std::to_string(seq) + " with " + kv_name(req.kv) + " KV.";
    if (lo > 0) {
      p.advice += " Longest seq that fits: " + std::to_string(lo) + " on " +
                  std::to_string(p.boards.size()) + " boards (use --seq " + std::to_string(lo) +
                  ").";
      if (req.kv == KvType::kF32) p.advice += " --kv f16 halves the KV cache.";
    } else {
      p.advice += " A single layer or the head's embedding + classifier is larger than one board.";
    }
    return p;
  }
  if (best_split(m, board, req.boards, seq, req.kv, req.baud, &ranges)) {
    return evaluate_split(m, board, seq, req.kv, req.baud, ranges);
  }
  // Nothing fits at this seq: find the longest seq that does, and what else would help.
  Plan p;
  uint32_t lo = 0, hi = seq;
  std::vector<std::pair<uint32_t, uint32_t>> best_ranges;
  while (lo < hi) {
    const uint32_t mid = lo + (hi - lo + 1) / 2;
    std::vector<std::pair<uint32_t, uint32_t>> r;
    if (best_split(m, board, req.boards, mid, req.kv, req.baud, &r)) {
      lo = mid;
      best_ranges = r;
    } else {
      hi = mid - 1;
    }
  }
  if (lo > 0) {
    p = evaluate_split(m, board, lo, req.kv, req.baud, best_ranges);
    p.fits = false;  // not at the requested seq
  }
  p.seq_len = lo;
  p.kv = req.kv;
  std::string advice = "does not fit on " + std::to_string(req.boards) + " x " + board.name +
                       " at seq " + std::to_string(seq) + " with " + kv_name(req.kv) + " KV.";
  if (lo > 0)
    advice += " Longest seq that fits: " + std::to_string(lo) + " (use --seq " +
              std::to_string(lo) + ").";
  if (req.kv == KvType::kF32) {
    std::vector<std::pair<uint32_t, uint32_t>> r;
    if (best_split(m, board, req.boards, seq, KvType::kF16, req.baud, &r)) {
      advice += " With --kv f16 it fits at seq " + std::to_string(seq) + ".";
    }
  }
  for (uint32_t n = req.boards + 1; n <= max_boards; n++) {
    std::vector<std::pair<uint32_t, uint32_t>> r;
    if (best_split(m, board, n, seq, req.kv, req.baud, &r)) {
      advice += " " + std::to_string(n) + " boards fit at seq " + std::to_string(seq) + ".";
      break;
    }
  }
  p.advice = advice;
  return p;
}

std::string layer_range_text(uint32_t layer_begin, uint32_t layer_end) {
  if (layer_end <= layer_begin) return "none";
  return std::to_string(layer_begin) + "-" + std::to_string(layer_end - 1);
}

bool parse_layer_ranges(const std::string& text, uint32_t n_layers,
                        std::vector<std::pair<uint32_t, uint32_t>>* out, std::string* err) {
  std::vector<std::pair<uint32_t, uint32_t>> in_order;
  size_t i = 0;
  uint32_t next = 0;
  while (i <= text.size()) {
    size_t comma = text.find(',', i);
    if (comma == std::string::npos) comma = text.size();
    const std::string part = text.substr(i, comma - i);
    if (part == "-" || part.empty()) {
      in_order.push_back({next, next});  // a board with no layers (the head only)
    } else {
      unsigned a = 0, b = 0;
      char extra = 0;
      const int got = std::sscanf(part.c_str(), "%u-%u%c", &a, &b, &extra);
      if (got == 1) b = a;
      if ((got != 1 && got != 2) || b < a) {
        *err = "bad layer range '" + part + "' (expected like 0-2 or 5)";
        return false;
      }
      if (a != next) {
        *err =
            "layer ranges must cover the layers in order without gaps: expected a range starting "
            "at " +
            std::to_string(next) + ", got '" + part + "'";
        return false;
      }
      in_order.push_back({a, b + 1});
      next = b + 1;
    }
    i = comma + 1;
  }
  if (next != n_layers) {
    *err = "layer ranges cover layers 0-" + std::to_string(next ? next - 1 : 0) +
           " but the model has " + std::to_string(n_layers) + " layers (0-" +
           std::to_string(n_layers - 1) + ")";
    return false;
  }
  // Ring order: the last range is the head's (stage 0); the others are stages 1.. in order.
  out->clear();
  out->push_back(in_order.back());
  for (size_t k = 0; k + 1 < in_order.size(); k++) out->push_back(in_order[k]);
  return true;
}

}  // namespace llmwire
