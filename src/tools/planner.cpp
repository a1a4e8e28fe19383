#include "tools/planner.h"

#include "runtime/stage.h"

#include <stdio.h>

#include <algorithm>
#include <cmath>

#include "engine/kv_cache.h"
#include "engine/model.h"
#include "pipeline/chunk.h"
#include "pipeline/head.h"
#include "tools/classifier_slices.h"

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
  // PSRAM/SRAM figures leave room for the firmware's own heap, stacks and drivers. Speeds:
  // esp32s3_scalar_figures() (tools/cost_model.cpp), each with its source.
  static const std::vector<BoardProfile> profiles = {
      {"esp32s3-16mb",
       "ESP32-S3 N16R8: 16 MB flash (model partition 0xE00000 at 0x1F0000), 8 MB PSRAM", 0xE00000,
       8u * 1024 * 1024 - 256 * 1024, 300 * 1024, esp32s3_scalar_figures()},
      {"esp32s3-8mb",
       "ESP32-S3 N8R2: 8 MB flash (model partition 0x600000 at 0x1F0000), 2 MB PSRAM", 0x600000,
       2u * 1024 * 1024 - 256 * 1024, 300 * 1024, esp32s3_scalar_figures()},
      {"esp32s3-32mb",
       "ESP32-S3 N32R8: 32 MB flash (model partition 0x1E00000 at 0x1F0000), 8 MB PSRAM", 0x1E00000,
       8u * 1024 * 1024 - 256 * 1024, 300 * 1024, esp32s3_scalar_figures()},
      // src/platform/rv32/main.cpp: a 32 MiB pflash window, 8 MiB "PSRAM" and 512 KiB
      // "internal" static arrays; time in instructions (qemu -icount shift=0).
      {"rv32-emulated",
       "emulated rv32imafc board (sim --emulate): 32 MiB flash, 8 MiB PSRAM, 512 KiB internal; "
       "time = instructions at 1 per ns (qemu -icount shift=0)",
       32u * 1024 * 1024, 8u * 1024 * 1024, 512 * 1024, rv32_emulated_figures()},
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
  return s;
}

// Flags of a request that every evaluation below carries (placement, classifier split).
struct Options {
  bool place = true, split_classifier = false;
  uint32_t estimate_pos = UINT32_MAX;  // PlanRequest::estimate_pos
  bool greedy = false;
  // Classifier rows by stage (split_classifier); null while the split is still being chosen:
  // then a worker takes an equal share, or what its flash partition still holds if less.
  const std::vector<std::pair<uint32_t, uint32_t>>* slices = nullptr;
};

static Options options_of(const PlanRequest& r) {
  Options o;
  o.place = r.place_weights;
  o.split_classifier = r.split_classifier;
  o.estimate_pos = r.estimate_pos;
  o.greedy = r.greedy;
  return o;
}

std::vector<std::pair<uint32_t, uint32_t>> classifier_slices_for(uint32_t vocab, uint32_t n) {
  std::vector<std::pair<uint32_t, uint32_t>> out;
  uint32_t r = 0;
  for (uint32_t k = 0; k < n; k++) {
    uint32_t e =
        k + 1 == n ? vocab : std::min(vocab, (uint32_t)((uint64_t)vocab * (k + 1) / n / 8 * 8));
    e = std::max(e, r);
    out.push_back({r, e});
    r = e;
  }
  return out;
}

// What the stage runtime takes from each region at boot (Stage::memory_needs) for board `b`'s
// layers and classifier rows, running prompt chunks of `batch` positions. The big region (KV
// cache, logits, attention scores) is PSRAM; the fast one, with the frame receiver's buffer,
// internal SRAM when it fits, else PSRAM too.
struct StageRam {
  MemoryNeeds need;
  uint64_t sram = 0, psram = 0;
};
static StageRam stage_ram(const ModelSizes& m, const BoardProfile& board, const BoardPlan& b,
                          uint32_t seq, KvType kv, uint32_t batch) {
  ImageInfo si = m.info;
  si.config.seq_len = seq;
  si.layer_begin = b.layer_begin;
  si.layer_end = b.layer_end;
  si.stage_index = b.head ? 0 : 1;
  si.flags = b.head ? (kFlagHasTokenizer | kFlagHasEmbedding | kFlagHasClassifier) : 0;
  if (!b.head && b.classifier_end > b.classifier_begin) {
    // A worker's slice: its logits live in its big region (Model::layout).
    si.flags |= kFlagClassifierSlice;
    si.cls_row_begin = b.classifier_begin;
    si.cls_row_end = b.classifier_end;
  }
  StageOptions so;
  so.run.kv_override = true;
  so.run.kv_type = kv;
  so.run.prompt_batch = batch;
  StageRam r;
  r.need = Stage::memory_needs(si, so);
  r.sram = r.need.fast + kMaxFrameSize;
  r.psram = r.need.big;
  if (r.sram > board.sram_bytes) {
    r.psram += r.sram;
    r.sram = 0;
  }
  return r;
}

static BoardPlan evaluate_board(const ModelSizes& m, const BoardProfile& board, uint32_t stage,
                                uint32_t stages, uint32_t lb, uint32_t le, uint32_t seq, KvType kv,
                                uint32_t baud, const Options& opt) {
  const ModelConfig& c = m.info.config;
  BoardPlan b;
  b.stage = stage;
  b.head = stage == 0;
  b.layer_begin = lb;
  b.layer_end = le;
  const uint32_t vocab = c.vocab_size;
  const uint64_t cls_full = m.classifier ? m.classifier : m.embedding;
  const uint64_t row_bytes = cls_full / vocab;
  // Image: header, table, then 64-byte aligned tensors in the converter's order; each tensor
  // also as the placement sees it.
  std::vector<uint64_t> parts;
  std::vector<PlacementItem> items;
  auto add = [&](TensorKind k, uint32_t layer, uint64_t bytes) {
    parts.push_back(bytes);
    PlacementItem it;
    it.kind = k;
    it.layer = layer;
    it.bytes = bytes;
    items.push_back(it);
  };
  if (b.head) {
    for (uint64_t t : m.tokenizer_tensors) add(TensorKind::kTokScores, kNoLayer, t);
    add(TensorKind::kTokEmbedding, kNoLayer, m.embedding);
  }
  for (uint32_t l = lb; l < le; l++) {
    for (uint64_t t : m.layer_tensors[l]) add(TensorKind::kWq, l, t);
  }
  if (b.head) add(TensorKind::kRmsFinal, kNoLayer, m.rms_final);
  // A separate classifier (or, split, this board's rows of it; a worker's rows of a shared
  // one are a copy of embedding rows).
  auto image_bytes = [&](size_t extra_tensors) {
    uint64_t pos = kHeaderSize + (uint64_t)kTensorEntrySize * (parts.size() + extra_tensors);
    for (uint64_t p : parts) pos = align64(pos) + p;
    return align64(pos);
  };
  {
    const uint64_t used = image_bytes(1);
    const uint64_t room = board.partition_bytes > used ? board.partition_bytes - used : 0;
    // A head holding the shared embedding holds every row already.
    b.classifier_room_rows =
        b.head && !m.classifier ? vocab : (uint32_t)std::min<uint64_t>(vocab, room / row_bytes);
  }
  if (opt.split_classifier && opt.slices) {
    b.classifier_begin = (*opt.slices)[stage].first;
    b.classifier_end = (*opt.slices)[stage].second;
  } else if (opt.split_classifier) {
    // While the split is being chosen: an equal share, or what the flash still holds.
    const uint32_t share = classifier_slices_for(vocab, stages)[0].second;
    b.classifier_end = std::min(share, b.classifier_room_rows / 8 * 8);
  } else if (b.head) {
    b.classifier_end = vocab;
  }
  const uint64_t cls_bytes = row_bytes * (b.classifier_end - b.classifier_begin);
  if ((b.head && m.classifier && !opt.split_classifier) ||
      (opt.split_classifier && cls_bytes && (m.classifier || !b.head))) {
    add(TensorKind::kClassifier, kNoLayer, opt.split_classifier ? cls_bytes : m.classifier);
  }
  {
    uint64_t pos = kHeaderSize + (uint64_t)kTensorEntrySize * parts.size();
    for (uint64_t p : parts) pos = align64(pos) + p;
    b.image_bytes = pos;
  }

  // RAM: exactly what the stage runtime takes from each region at boot.
  const StageRam ram = stage_ram(m, board, b, seq, kv, 1);
  b.kv_bytes = KvCache::bytes(kv, le - lb, seq, c.kv_dim(), c.n_kv_heads);
  // The frame receiver's buffer lives in the runtime object itself (internal RAM).
  b.link_buffer_bytes = kMaxFrameSize;
  b.activation_bytes = ram.need.fast;
  const uint64_t sram = ram.sram, psram = ram.psram;
  b.sram_used = sram;
  b.psram_used = psram;
  b.fits_flash = b.image_bytes <= board.partition_bytes;
  b.fits_ram = psram <= board.psram_bytes;

  // Weight placement, as the stage computes it at boot from the RAM left over.
  std::vector<WeightRegion> region(items.size(), WeightRegion::kFlash);
  if (opt.place && b.fits_ram) {
    const uint64_t big_free = board.psram_bytes - psram;
    const uint64_t fast_free = board.sram_bytes > sram ? board.sram_bytes - sram : 0;
    const bool shared = m.info.config.shared_classifier && b.head;
    b.placement = choose_placement(items.data(), (uint32_t)items.size(), shared, big_free,
                                   fast_free, region_speeds(board.cost), region.data());
  }
  for (size_t i = 0; i < items.size(); i++) {
    const bool cls =
        items[i].kind == TensorKind::kClassifier ||
        (items[i].kind == TensorKind::kTokEmbedding && m.info.config.shared_classifier && b.head);
    if (cls) {
      b.classifier_region = region[i];
    } else if (items[i].layer != kNoLayer && region[i] == WeightRegion::kBig) {
      b.placed_layer_big += items[i].bytes;
    } else if (items[i].layer != kNoLayer && region[i] == WeightRegion::kFast) {
      b.placed_layer_fast += items[i].bytes;
    }
  }

  // Per token, at the mean position of a context filled from 0 to seq.
  CostShape shape;
  shape.config = c;
  shape.weights = m.info.weight_type;
  shape.group = m.info.group_size;
  shape.layer_tensors = m.layer_tensors;
  shape.embedding_row = m.embedding_row;
  shape.rms_final = m.rms_final;
  shape.classifier = cls_full;
  CostInput in;
  in.layer_bytes_big = b.placed_layer_big;
  in.layer_bytes_fast = b.placed_layer_fast;
  in.classifier_region = b.classifier_region;
  if (opt.split_classifier) {
    in.classifier_rows = b.classifier_end - b.classifier_begin;
    // Sampling runs on the slices too (the split sampler); greedy merges the slices' max.
    in.split_sampler = !opt.greedy;
  }
  in.layer_begin = lb;
  in.layer_end = le;
  in.head = b.head;
  in.pos = opt.estimate_pos < seq ? opt.estimate_pos : seq / 2;
  in.sample_topp = !opt.greedy;
  in.kv = kv;
  in.stages = stages;
  in.baud = baud;
  in.scratch_in_psram = true;  // the model's big region is PSRAM
  b.gen = board_cost(shape, board.cost, in);
  in.classifier = false;
  b.prompt = board_cost(shape, board.cost, in);
  in.pos = kPromptEstimateTokens / 2;
  b.prompt_short = board_cost(shape, board.cost, in);
  in.classifier = true;
  b.gen_short = board_cost(shape, board.cost, in);
  b.weight_bytes_per_token = b.gen.weight_flash + b.gen.weight_psram + b.gen.weight_sram;
  b.link_bytes_per_token = b.gen.link_bytes;
  return b;
}

std::vector<std::pair<uint32_t, uint32_t>> classifier_split_for(
    const ModelSizes& m, const BoardProfile& board, const PlanRequest& req, uint32_t seq,
    const std::vector<std::pair<uint32_t, uint32_t>>& ranges) {
  const uint32_t n = (uint32_t)ranges.size(), vocab = m.info.config.vocab_size;
  std::vector<uint32_t> rows = req.classifier_rows;
  if (rows.size() != n) {
    // Each board's time per row (its slice's weights where the placement puts them, MACs,
    // logits) with an equal share, and the rows its flash still holds; then the one choice.
    const Options opt = options_of(req);
    std::vector<double> row_s(n, 0.0);
    std::vector<uint32_t> room(n, vocab);
    for (uint32_t s = 0; s < n; s++) {
      const BoardPlan b = evaluate_board(m, board, s, n, ranges[s].first, ranges[s].second, seq,
                                         req.kv, req.baud, opt);
      const uint32_t r = b.classifier_end - b.classifier_begin;
      row_s[s] = r ? b.gen.classifier_s / r : 0.0;
      room[s] = b.classifier_room_rows;
    }
    for (uint32_t s = 0; s < n; s++) {
      if (row_s[s] <= 0) row_s[s] = row_s[0] > 0 ? row_s[0] : 1e-9;  // no share: as the head
    }
    rows = n > 1 ? choose_classifier_rows(vocab, m.info.config.dim, req.baud, row_s, room)
                 : std::vector<uint32_t>{vocab};
  }
  std::vector<std::pair<uint32_t, uint32_t>> slices;
  uint32_t r0 = 0;
  for (uint32_t r : rows) {
    const uint32_t e = std::min(vocab, r0 + r);
    slices.push_back({r0, e});
    r0 = e;
  }
  return slices;
}

// ---- The prompt estimate (issue 9 item 4, docs/PLANNER.md "Prompts in chunks") ----

// Whether every board of `p` fits its RAM when the stages run prompt chunks of `batch`
// positions: the model's batch rows and the hop buffers for chunk frames grow with it
// (Stage::memory_needs, as evaluate_board counts RAM). The weight placement adapts at boot.
static bool fits_with_batch(const ModelSizes& m, const BoardProfile& board, const Plan& p,
                            uint32_t batch) {
  for (const BoardPlan& b : p.boards) {
    if (stage_ram(m, board, b, p.seq_len, p.kv, batch).psram > board.psram_bytes) return false;
  }
  return true;
}

static void estimate_prompt(const ModelSizes& m, const BoardProfile& board, const Options& opt,
                            uint32_t baud, bool logits, Plan* p) {
  const uint32_t dim = m.info.config.dim, n = kPromptEstimateTokens;
  std::vector<BoardCost> pos, gen;
  for (const BoardPlan& b : p->boards) {
    pos.push_back(b.prompt_short);
    gen.push_back(b.gen_short);
  }
  const double token = opt.split_classifier
                           ? generation_path_split_s(gen, dim, baud, logits, !opt.greedy)
                           : generation_path_s(gen);
  uint32_t most = chunk_positions(kMaxPromptBatch, dim);
  while (most > 1 && !fits_with_batch(m, board, *p, most)) most--;
  // The fastest chunk size that fits: bigger chunks read the weights less often, but each
  // must cross a whole wire before the next stage starts on it (on a wire-bound ring, small
  // chunks win).
  uint32_t chunk = 1;
  double best = 0;
  for (uint32_t b = 1; b <= most; b++) {
    const double t = prompt_chunks_s(pos, n - 1, b, p->prompt_window, dim, baud);
    if (b == 1 || t < best) {
      best = t;
      chunk = b;
    }
  }
  p->prompt_tokens = n;
  p->prompt_chunk = chunk;
  p->prompt_chunk_max = most;
  // generate() feeds positions 0..n-2 and sends the last one alone, as the first generated
  // token: round the ring with the classifier.
  p->prompt_s = best + token;
  p->prompt_stream_s = prompt_chunks_s(pos, n - 1, 1, p->prompt_window, dim, baud) + token;
  p->prompt_serial_s = n * token;
}

Plan evaluate_split(const ModelSizes& m, const BoardProfile& board, uint32_t seq, KvType kv,
                    uint32_t baud, const std::vector<std::pair<uint32_t, uint32_t>>& ranges) {
  PlanRequest r;
  r.kv = kv;
  r.baud = baud;
  return evaluate_split(m, board, r, seq, ranges);
}

Plan evaluate_split(const ModelSizes& m, const BoardProfile& board, const PlanRequest& req,
                    uint32_t seq, const std::vector<std::pair<uint32_t, uint32_t>>& ranges) {
  const KvType kv = req.kv;
  const uint32_t baud = req.baud;
  Options opt = options_of(req);
  std::vector<std::pair<uint32_t, uint32_t>> slices;
  if (opt.split_classifier) {
    slices = classifier_split_for(m, board, req, seq, ranges);
    opt.slices = &slices;
  }
  Plan p;
  p.seq_len = seq;
  p.kv = kv;
  p.fits = true;
  const uint32_t n = (uint32_t)ranges.size();
  for (uint32_t s = 0; s < n; s++) {
    p.boards.push_back(
        evaluate_board(m, board, s, n, ranges[s].first, ranges[s].second, seq, kv, baud, opt));
    const BoardPlan& b = p.boards.back();
    p.fits = p.fits && b.fits_flash && b.fits_ram;
    p.link_share += b.gen.link_s;
  }
  std::vector<BoardCost> gen, prompt;
  for (const BoardPlan& b : p.boards) {
    gen.push_back(b.gen);
    prompt.push_back(b.prompt);
  }
  p.estimate_pos = opt.estimate_pos < seq ? opt.estimate_pos : seq / 2;
  p.classifier_split = opt.split_classifier;
  for (const BoardPlan& b : p.boards)
    p.classifier_slices.push_back({b.classifier_begin, b.classifier_end});
  // Sampling runs on the slices (the split sampler): no logits travel.
  const bool logits = false;
  p.token_s = opt.split_classifier
                  ? generation_path_split_s(gen, m.info.config.dim, baud, logits, !req.greedy)
                  : generation_path_s(gen);
  p.prompt_window = HeadOptions{}.window;
  p.prompt_token_s = prompt_token_s(prompt, p.prompt_window);
  estimate_prompt(m, board, opt, baud, logits, &p);
  if (p.token_s > 0) p.link_share /= p.token_s;
  // Largest sequence length this split fits at (RAM grows with seq; flash does not).
  uint32_t lo = 0, hi = m.info.config.seq_len;
  while (lo < hi) {
    const uint32_t mid = lo + (hi - lo + 1) / 2;
    bool ok = true;
    for (uint32_t s = 0; s < n && ok; s++) {
      const BoardPlan b =
          evaluate_board(m, board, s, n, ranges[s].first, ranges[s].second, mid, kv, baud, opt);
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

// Best split into `n` boards at `seq`: minimises the busiest board's time per prompt token
// (its work or its wire) subject to every board fitting. Workers (stages 1..n-1) take layers from 0
// upwards in ring order, the head takes the last range (possibly empty). Dynamic programming over
// cut points.
static bool best_split(const ModelSizes& m, const BoardProfile& board, uint32_t n, uint32_t seq,
                       KvType kv, uint32_t baud, const Options& opt,
                       std::vector<std::pair<uint32_t, uint32_t>>* out) {
  const uint32_t L = m.info.config.n_layers;
  if (n == 0 || n - 1 > L) return false;
  const double kInf = 1e300;
  auto cost = [&](uint32_t stage, uint32_t a, uint32_t b, bool* fits) {
    const BoardPlan bp = evaluate_board(m, board, stage, n, a, b, seq, kv, baud, opt);
    *fits = bp.fits_flash && bp.fits_ram;
    // A generated token's critical path is the sum over the boards, the same for every cut
    // (up to core hand-offs); what the cuts change is the busiest board while a prompt streams.
    return std::max(bp.prompt.board_s(), bp.prompt.link_s);
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
  return kv_type_name(kv);
}

// KV types with smaller elements than `kv`, largest first (what the advice suggests).
static std::vector<KvType> smaller_kv_types(KvType kv) {
  std::vector<KvType> out;
  for (KvType t : {KvType::kF16, KvType::kI8}) {
    if (KvCache::element_bytes(t) < KvCache::element_bytes(kv)) out.push_back(t);
  }
  return out;
}

Plan make_plan(const ModelSizes& m, const BoardProfile& board, const PlanRequest& req) {
  const ModelConfig& c = m.info.config;
  const Options opt = options_of(req);
  const uint32_t seq = req.seq_len ? std::min(req.seq_len, c.seq_len) : c.seq_len;
  std::vector<std::pair<uint32_t, uint32_t>> ranges;
  if (!req.forced.empty()) return evaluate_split(m, board, req, seq, req.forced);
  const uint32_t max_boards = c.n_layers + 1;
  if (req.boards == 0) {
    for (uint32_t n = 1; n <= max_boards; n++) {
      if (best_split(m, board, n, seq, req.kv, req.baud, opt, &ranges)) {
        Plan p = evaluate_split(m, board, req, seq, ranges);
        // What fewer boards would take: fp16 KV, or a shorter context.
        std::string also;
        for (KvType smaller : smaller_kv_types(req.kv)) {
          bool found = false;
          for (uint32_t k = 1; k < n && !found; k++) {
            std::vector<std::pair<uint32_t, uint32_t>> r;
            if (best_split(m, board, k, seq, smaller, req.baud, opt, &r)) {
              also += " With --kv " + kv_name(smaller) + ", " + std::to_string(k) +
                      " boards fit at seq " + std::to_string(seq) + ".";
              found = true;
            }
          }
          if (found) break;
        }
        for (uint32_t k = 1; k < n; k++) {
          std::vector<std::pair<uint32_t, uint32_t>> r;
          if (best_split(m, board, k, 1, req.kv, req.baud, opt, &r)) {
            const Plan q = evaluate_split(m, board, req, 1, r);
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
      if (best_split(m, board, max_boards, mid, req.kv, req.baud, opt, &r)) {
        lo = mid;
      } else {
        hi = mid - 1;
      }
    }
    Plan p;
    if (lo > 0) {
      for (uint32_t n = 1; n <= max_boards; n++) {
        if (best_split(m, board, n, lo, req.kv, req.baud, opt, &ranges)) {
          p = evaluate_split(m, board, req, lo, ranges);
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
      if (req.kv == KvType::kF32) p.advice += " --kv f16 halves the KV cache, --kv i8 quarters it.";
      if (req.kv == KvType::kF16) p.advice += " --kv i8 halves the KV cache.";
    } else {
      p.advice += " A single layer or the head's embedding + classifier is larger than one board.";
    }
    return p;
  }
  if (best_split(m, board, req.boards, seq, req.kv, req.baud, opt, &ranges)) {
    return evaluate_split(m, board, req, seq, ranges);
  }
  // Nothing fits at this seq: find the longest seq that does, and what else would help.
  Plan p;
  uint32_t lo = 0, hi = seq;
  std::vector<std::pair<uint32_t, uint32_t>> best_ranges;
  while (lo < hi) {
    const uint32_t mid = lo + (hi - lo + 1) / 2;
    std::vector<std::pair<uint32_t, uint32_t>> r;
    if (best_split(m, board, req.boards, mid, req.kv, req.baud, opt, &r)) {
      lo = mid;
      best_ranges = r;
    } else {
      hi = mid - 1;
    }
  }
  if (lo > 0) {
    p = evaluate_split(m, board, req, lo, best_ranges);
    p.fits = false;  // not at the requested seq
  }
  p.seq_len = lo;
  p.kv = req.kv;
  std::string advice = "does not fit on " + std::to_string(req.boards) + " x " + board.name +
                       " at seq " + std::to_string(seq) + " with " + kv_name(req.kv) + " KV.";
  if (lo > 0)
    advice += " Longest seq that fits: " + std::to_string(lo) + " (use --seq " +
              std::to_string(lo) + ").";
  for (KvType smaller : smaller_kv_types(req.kv)) {
    std::vector<std::pair<uint32_t, uint32_t>> r;
    if (best_split(m, board, req.boards, seq, smaller, req.baud, opt, &r)) {
      advice += " With --kv " + kv_name(smaller) + " it fits at seq " + std::to_string(seq) + ".";
      break;
    }
  }
  for (uint32_t n = req.boards + 1; n <= max_boards; n++) {
    std::vector<std::pair<uint32_t, uint32_t>> r;
    if (best_split(m, board, n, seq, req.kv, req.baud, opt, &r)) {
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
