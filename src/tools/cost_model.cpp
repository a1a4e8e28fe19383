#include "tools/cost_model.h"

#include <algorithm>

#include "engine/kv_cache.h"
#include "tools/classifier_slices.h"

namespace llmwire {

const char* kernel_name(MacKind k) {
  switch (k) {
    case MacKind::kMatmulQ4:
      return "matmul q4";
    case MacKind::kMatmulQ8:
      return "matmul q8";
    case MacKind::kMatmulF32:
      return "matmul f32";
    case MacKind::kAttentionF32:
      return "attention f32 KV";
    case MacKind::kAttentionF16:
      return "attention f16 KV";
    case MacKind::kAttentionI8:
      return "attention i8 KV";
    default:
      return "?";
  }
}

const char* op_name(OpKind k) {
  switch (k) {
    case OpKind::kMatmulCall:
      return "matmul calls";
    case OpKind::kMatmulRow:
      return "matmul rows";
    case OpKind::kExp:
      return "exp";
    case OpKind::kSinCos:
      return "sin/cos";
    case OpKind::kQuantize:
      return "quantized elements";
    case OpKind::kVector:
      return "vector elements";
    case OpKind::kScore:
      return "attention scores";
    case OpKind::kSampleTopp:
      return "top-p sampled rows";
    case OpKind::kSampleArgmax:
      return "arg max rows";
    default:
      return "?";
  }
}

namespace {

// The per-operation instruction counts of the emulated rv32 MCU (bench/rv32/op_bench.cpp under
// qemu -icount shift=0, the engine's own functions; `bench/plan_vs_emulated.sh` prints them).
void set_rv32_op_counts(CostFigures* f) {
  Figure* o = f->cycles_per_op;
  o[(int)OpKind::kMatmulCall] = {1558,
                                 "rv32 op_bench: matmul_scalar32 over 8 shapes (32-768 rows, "
                                 "64-768 columns), least-squares per call / row / MAC, each "
                                 "shape within 0.6%"};
  o[(int)OpKind::kMatmulRow] = {66.6, "rv32 op_bench: the same fit, per output row (q4; q8 62)"};
  o[(int)OpKind::kExp] = {79.0, "rv32 op_bench: exp_f32, 40,457 instructions for 512 calls"};
  o[(int)OpKind::kSinCos] = {83.0, "rv32 op_bench: sincos_f32, 42,518 instructions for 512 calls"};
  o[(int)OpKind::kQuantize] = {37.2,
                               "rv32 op_bench: quantize_input, 10,714 instructions for 288 "
                               "elements (37.6 at 64, 38.1 at 172)"};
  o[(int)OpKind::kVector] = {6,
                             "estimate, not measured: a load, a float operation or two, a "
                             "store and the loop per element (norms, residuals, RoPE, KV store)"};
  o[(int)OpKind::kScore] = {17,
                            "rv32 op_bench: softmax 92.1 instructions per element less its exp "
                            "(79.0), plus ~4 for the score's division by sqrt(head size)"};
  o[(int)OpKind::kSampleTopp] = {107.8,
                                 "rv32 op_bench: Sampler::sample at temperature 1, top-p 0.9 "
                                 "over 512 logits, 55,184 instructions (mean of 8)"};
  o[(int)OpKind::kSampleArgmax] = {6.1,
                                   "rv32 op_bench: greedy arg max, 3,121 instructions for 512 "
                                   "logits"};
}

}  // namespace

CostFigures esp32s3_scalar_figures() {
  // Sources: ../shared/design/hardware-facts.md ("hw-facts") and the instruction counts of
  // the emulated LX7 core quoted there and in issue 9. An instruction is counted as one cycle
  // (the LX7 issues at most one per cycle; memory stalls are counted separately as memory
  // time), so these cycle figures are lower bounds on compute.
  CostFigures f;
  f.clock_hz = {240e6, "ESP32-S3 datasheet: LX7 at up to 240 MHz (firmware sets 240)"};
  f.cores = {2, "two LX7 cores: the stage on core 1, the matmul helper on core 0 (firmware)"};
  f.flash_bw = {25e6,
                "measured: random 512-byte row read from mapped QIO 80 MHz flash in "
                "20.3 us (R-457, hw-facts)"};
  f.psram_bw = {85e6,
                "measured: octal PSRAM 80 MHz with 64-byte cache lines, 84-86 MB/s "
                "(two projects, hw-facts); the firmware sets 64-byte lines"};
  f.sram_bw = {230e6, "internal SRAM hot in cache, ~230 MB/s scalar (hw-facts)"};
  const int q4 = (int)MacKind::kMatmulQ4, q8 = (int)MacKind::kMatmulQ8,
            f32 = (int)MacKind::kMatmulF32, a32 = (int)MacKind::kAttentionF32,
            a16 = (int)MacKind::kAttentionF16, a8 = (int)MacKind::kAttentionI8;
  f.cycles_per_mac[q4] = {12.1,
                          "emulated LX7 (instruction-accurate): the scalar q4 matmul alone, "
                          "12.1 instructions per MAC (hw-facts)"};
  f.cycles_per_mac[q8] = {10.6,
                          "derived: LX7 q4 figure 12.1 x (q8 / q4 on the emulated rv32 "
                          "MCU: 11.0 / 12.6 instructions per MAC, bench/emulated_mcu.sh)"};
  f.cycles_per_mac[f32] = {50,
                           "emulated LX7: f32 path, 50 instructions per MAC (hw-facts; an "
                           "out-of-line memcpy per unaligned weight load)"};
  f.cycles_per_mac[a32] = {6,
                           "estimate, not measured: the attention loop's instructions per MAC "
                           "(2 float loads, mul, add, 2 increments) on aligned PSRAM data"};
  f.cycles_per_mac[a16] = {16,
                           "estimate, not measured: the f32 loop plus a software "
                           "half-to-float conversion (~10 instructions)"};
  f.cycles_per_mac[a8] = {7,
                          "estimate, not measured: the f32 loop with a signed byte load and an "
                          "int-to-float conversion per element (the head vector's scale is "
                          "applied once per dot product)"};
  // The other per-token operations have not been counted on the LX7: the emulated rv32 MCU's
  // instruction counts stand in for them (both are in-order 32-bit cores with a single-
  // precision FPU; the LX7 lacks a hardware divide, so divisions may cost more there).
  set_rv32_op_counts(&f);
  for (Figure& o : f.cycles_per_op) {
    o.source =
        "ESTIMATE for the LX7: the emulated rv32 MCU's instruction count (see "
        "rv32_emulated_figures())";
  }
  // The LX7's 12.1 per MAC was counted over stories260K's whole matmuls, rows and calls
  // included.
  f.cycles_per_op[(int)OpKind::kMatmulCall] = {0, "included in the LX7's 12.1 per q4 MAC"};
  f.cycles_per_op[(int)OpKind::kMatmulRow] = {0, "included in the LX7's 12.1 per q4 MAC"};
  f.handoff_s = {34e-6,
                 "measured: FreeRTOS task-notification round trip between the cores "
                 "(hw-facts)"};
  f.min_parallel_macs = {65536, "RunOptions::min_parallel_macs: smaller calls stay on one core"};
  return f;
}

CostFigures esp32s3_pie_figures() {
  CostFigures f = esp32s3_scalar_figures();
  f.cycles_per_mac[(int)MacKind::kMatmulQ8] = {
      0.3,
      "ESTIMATE: 0.14 instructions per int8 MAC measured for one fused EE.VMULAS.S8.ACCX "
      "load+MAC sequence on the emulated LX7 (issue 9, hw-facts), plus ~5 instructions per "
      "32-weight group for its scale (0.16)"};
  f.cycles_per_mac[(int)MacKind::kMatmulQ4] = {
      0.4,
      "ESTIMATE: ~8 instructions per 32 q4 MACs in a working PIE int4 kernel (slvDev/esp32-ai, "
      "hw-facts: 0.25), plus ~5 instructions per 32-weight group for its scale (0.16)"};
  return f;
}

CostFigures rv32_emulated_figures() {
  CostFigures f = esp32s3_scalar_figures();  // bandwidths: what the rv32 platform tells placement
  f.memory_timed = false;
  f.clock_hz = {1e9, "qemu -icount shift=0: one instruction per virtual nanosecond"};
  f.cores = {1, "src/platform/rv32: one hart, SerialExecutor"};
  f.handoff_s = {0, "one core: no hand-off"};
  const int q4 = (int)MacKind::kMatmulQ4, q8 = (int)MacKind::kMatmulQ8,
            f32 = (int)MacKind::kMatmulF32, a32 = (int)MacKind::kAttentionF32,
            a16 = (int)MacKind::kAttentionF16, a8 = (int)MacKind::kAttentionI8;
  f.cycles_per_mac[q4] = {5.126,
                          "rv32 op_bench: matmul_scalar32 q4, least-squares per MAC (columns "
                          "padded to whole groups)"};
  f.cycles_per_mac[q8] = {5.345, "rv32 op_bench: matmul_scalar32 q8, the same fit"};
  f.cycles_per_mac[f32] = {40,
                           "estimate: bench/emulated_mcu.sh whole f32 forward, 42.7 instructions "
                           "per weight MAC, less the other work"};
  f.cycles_per_mac[a32] = {4,
                           "estimate, not measured: per MAC a float load, a multiply and an add "
                           "(the q.k loop runs four positions per query load)"};
  f.cycles_per_mac[a16] = {8, "estimate, not measured: the f32 loop plus half_to_float_fast"};
  f.cycles_per_mac[a8] = {5,
                          "estimate, not measured: the f32 loop with a byte load and an "
                          "int-to-float conversion"};
  set_rv32_op_counts(&f);
  return f;
}

RegionSpeeds region_speeds(const CostFigures& f) {
  RegionSpeeds s;
  s.flash = (uint32_t)f.flash_bw.value;
  s.big = (uint32_t)f.psram_bw.value;
  s.fast = (uint32_t)f.sram_bw.value;
  return s;
}

uint64_t BoardCost::total_macs() const {
  uint64_t t = 0;
  for (uint64_t m : macs) t += m;
  return t;
}

uint64_t activation_frame_bytes(uint32_t dim) {
  // sync 2 + version 1 + type 1 + seq 2 + len 2 + (session 4, pos 4, epoch 2, dest 1, flags 1)
  // + dim floats + CRC-32C 4 (docs/PROTOCOL.md).
  return 8 + 12 + 4ull * dim + 4;
}

double wire_seconds(uint64_t bytes, uint32_t baud) {
  return baud ? bytes * 10.0 / baud : 0.0;
}

namespace {

// Accumulates one kernel call: its MACs, and its cycles on one core or split over the cores.
struct Compute {
  const CostFigures& f;
  BoardCost* c;
  double cycles_one = 0, cycles_split = 0;
  // One kernel call of `macs`; `work_macs` of them as the kernel does them (partial groups
  // padded), and `rows` output rows of a matmul (0: attention, no row or call overhead).
  // `extra` cycles of other work go with the call (attention's softmax on the same core).
  void call(MacKind k, uint64_t macs, uint64_t work_macs = 0, uint64_t rows = 0, double extra = 0) {
    c->macs[(int)k] += macs;
    double cycles = (work_macs ? work_macs : macs) * f.cycles_per_mac[(int)k].value + extra;
    if (rows) {
      cycles += f.cycles_per_op[(int)OpKind::kMatmulCall].value +
                rows * f.cycles_per_op[(int)OpKind::kMatmulRow].value;
      c->ops[(int)OpKind::kMatmulCall]++;
      c->ops[(int)OpKind::kMatmulRow] += rows;
    }
    if (f.cores.value > 1 && macs >= f.min_parallel_macs.value) {
      cycles_split += cycles;
      c->split_calls++;
    } else {
      cycles_one += cycles;
    }
  }
  // A matmul of `rows` x `cols` weights.
  void matmul(MacKind k, uint64_t rows, uint64_t cols, uint32_t group) {
    const uint64_t padded =
        group && k != MacKind::kMatmulF32 ? (cols + group - 1) / group * group : cols;
    call(k, rows * cols, rows * padded, rows);
  }
  // `n` operations of one kind on this core.
  void op(OpKind k, uint64_t n) {
    c->ops[(int)k] += n;
    cycles_one += n * f.cycles_per_op[(int)k].value;
  }
  double cycles() const { return cycles_one + cycles_split; }
};

MacKind matmul_kernel(WeightType w) {
  return w == WeightType::kQ4   ? MacKind::kMatmulQ4
         : w == WeightType::kQ8 ? MacKind::kMatmulQ8
                                : MacKind::kMatmulF32;
}

double region_bw(const CostFigures& f, WeightRegion r) {
  return r == WeightRegion::kBig    ? f.psram_bw.value
         : r == WeightRegion::kFast ? f.sram_bw.value
                                    : f.flash_bw.value;
}

}  // namespace

BoardCost board_cost(const CostShape& s, const CostFigures& f, const CostInput& in) {
  const ModelConfig& c = s.config;
  BoardCost b;
  Compute comp{f, &b};
  const MacKind mk = matmul_kernel(s.weights);
  const uint64_t dim = c.dim, kv_dim = c.kv_dim(), hidden = c.hidden_dim;
  const uint64_t elem = KvCache::element_bytes(in.kv);
  const uint64_t positions = (uint64_t)in.pos + 1;
  // int8 KV: a float scale per head vector beside the elements.
  const uint64_t scale_q = in.kv == KvType::kI8 ? 4ull * c.n_heads : 0;
  const uint64_t scale_kv = in.kv == KvType::kI8 ? 4ull * c.n_kv_heads : 0;
  const MacKind att_kind = in.kv == KvType::kF16  ? MacKind::kAttentionF16
                           : in.kv == KvType::kI8 ? MacKind::kAttentionI8
                                                  : MacKind::kAttentionF32;
  // Weights are read where the placement put them (flash unless copied at boot).
  if (in.head) b.weight_flash += s.embedding_row;
  const uint32_t g = s.weights == WeightType::kF32 ? 0 : s.group;
  const bool quantized = s.weights != WeightType::kF32;
  // The embedding row: dequantized element by element (a scale conversion each).
  if (in.head) comp.op(OpKind::kVector, 4 * dim);
  uint64_t layer_bytes = 0;
  // One RoPE table per run of layers, shared by every head and layer (Model::rope_table).
  if (in.layer_end > in.layer_begin) {
    const uint64_t pairs = c.head_size() / 2;
    comp.op(OpKind::kSinCos, pairs);
    comp.op(OpKind::kVector, pairs);
  }
  for (uint32_t l = in.layer_begin; l < in.layer_end; l++) {
    for (uint64_t t : s.layer_tensors[l]) layer_bytes += t;
    for (uint64_t rows : {dim, kv_dim, kv_dim, dim}) comp.matmul(mk, rows, dim, g);  // q k v o
    // Every query head reads its KV head's keys and values at positions 0..pos.
    // Each score also has its softmax (an exp) and division; they run where the heads run.
    const uint64_t att_macs = 2 * dim * positions;
    const uint64_t scores = (uint64_t)c.n_heads * positions;
    b.ops[(int)OpKind::kScore] += scores;
    b.ops[(int)OpKind::kExp] += scores;
    comp.call(att_kind, att_macs, 0, 0,
              scores * (f.cycles_per_op[(int)OpKind::kScore].value +
                        f.cycles_per_op[(int)OpKind::kExp].value));
    b.kv_read += 2 * (dim * elem + scale_q) * positions;
    b.kv_written += 2 * (kv_dim * elem + scale_kv);
    comp.matmul(mk, hidden, dim, g);  // w1
    comp.matmul(mk, dim, hidden, g);  // w2
    comp.matmul(mk, hidden, dim, g);  // w3
    // Model::run_layers besides the matmuls and attention: SiLU (an exp per hidden element);
    // the inputs of the four matmul groups quantized; and element passes: two norms of two
    // passes, two residual adds, RoPE over q and k, the KV store (int8: its quantizer),
    // SiLU's products.
    comp.op(OpKind::kExp, hidden);
    if (quantized) comp.op(OpKind::kQuantize, 3 * dim + hidden);
    comp.op(OpKind::kVector, 4 * dim + 2 * dim + (dim + kv_dim) + 2 * hidden);
    comp.op(in.kv == KvType::kI8 ? OpKind::kQuantize : OpKind::kVector, 2 * kv_dim);
  }
  b.weight_sram = std::min(in.layer_bytes_fast, layer_bytes);
  b.weight_psram = std::min(in.layer_bytes_big, layer_bytes - b.weight_sram);
  b.weight_flash += layer_bytes - b.weight_sram - b.weight_psram;
  // The classifier rows, counted apart so the critical path can run slices in parallel.
  const bool slice = in.classifier_rows != CostInput::kAllRows;
  const uint32_t rows = !in.classifier || (!in.head && !slice)
                            ? 0
                            : (slice ? std::min(in.classifier_rows, c.vocab_size) : c.vocab_size);
  Compute cls{f, &b};
  uint64_t cls_scratch = 0, cls_bytes = 0;
  if (rows) {
    b.classifier_rows = rows;
    if (in.head) {
      b.weight_flash += s.rms_final;
      comp.op(OpKind::kVector, 2 * dim);  // the final norm
    }
    cls_bytes = s.classifier / c.vocab_size * rows;  // whole rows
    if (in.classifier_region == WeightRegion::kBig) {
      b.weight_psram += cls_bytes;
    } else if (in.classifier_region == WeightRegion::kFast) {
      b.weight_sram += cls_bytes;
    } else {
      b.weight_flash += cls_bytes;
    }
    cls.matmul(mk, rows, dim, g);
    if (quantized) cls.op(OpKind::kQuantize, dim);  // the classifier's input, per board
    // Logits (floats, larger than the data cache) are written, then read by sampling.
    if (in.scratch_in_psram) cls_scratch = 2ull * 4 * rows;
    b.scratch_psram += cls_scratch;
  }
  if (in.stages > 1) {
    b.link_bytes = activation_frame_bytes(c.dim);
    b.link_frames = 1;
  }
  // The split sampler: every board's own rows (pipeline/split_sampler.cpp). The exponentials
  // (scale, exp, add; written back over the logits), then the SUM chain's additions when the
  // exponentials came from PREPARE (workers), then normalise, the cutoff filter and the
  // probabilities' max, in one pass over the rows piece by piece.
  double split_exp = 0, split_add = 0, split_top = 0;
  uint64_t split_exp_bytes = 0, split_top_bytes = 0;
  if (in.split_sampler && rows) {
    const double vec = f.cycles_per_op[(int)OpKind::kVector].value;
    b.ops[(int)OpKind::kExp] += rows;
    b.ops[(int)OpKind::kVector] += 2ull * rows + (in.head ? 0 : rows) + 3ull * rows;
    split_exp = rows * (f.cycles_per_op[(int)OpKind::kExp].value + 2 * vec);
    split_add = in.head ? 0.0 : rows * vec;  // the head adds as it computes (no PREPARE)
    split_top = rows * 3 * vec;
    if (in.scratch_in_psram) {
      split_exp_bytes = 4ull * rows;      // the exponentials written back
      split_top_bytes = 4ull * rows * 2;  // normalised in place; filter and max in cache
    }
    b.scratch_psram += split_exp_bytes + (in.head ? 0 : 4ull * rows) + split_top_bytes;
  }
  // The head samples the next token from every logit, after the (merged) classifier.
  double sample_cycles = split_exp + split_add + split_top;
  if (in.head && in.classifier && !in.split_sampler) {
    const OpKind k = in.sample_topp ? OpKind::kSampleTopp : OpKind::kSampleArgmax;
    b.ops[(int)k] += c.vocab_size;
    sample_cycles = (double)c.vocab_size * f.cycles_per_op[(int)k].value;
  }
  const double mem = f.memory_timed ? 1.0 : 0.0;
  b.flash_s = mem * b.weight_flash / f.flash_bw.value;
  b.psram_s = mem * b.psram_bytes() / f.psram_bw.value;
  b.sram_s = mem * b.weight_sram / f.sram_bw.value;
  const double cores = std::max(1.0, f.cores.value);
  b.cycles = comp.cycles() + cls.cycles() + sample_cycles;
  b.sample_s = sample_cycles / f.clock_hz.value;
  b.compute_s = (comp.cycles_one + cls.cycles_one + sample_cycles +
                 (comp.cycles_split + cls.cycles_split) / cores) /
                f.clock_hz.value;
  b.handoff_s = b.split_calls * f.handoff_s.value;
  if (rows) {
    b.classifier_s = mem * cls_bytes / region_bw(f, in.classifier_region) +
                     mem * cls_scratch / f.psram_bw.value +
                     (cls.cycles_one + cls.cycles_split / cores) / f.clock_hz.value +
                     (cls.cycles_split > 0 ? f.handoff_s.value : 0.0);
  }
  if (in.split_sampler && rows) {
    b.sample_exp_s = split_exp / f.clock_hz.value + mem * split_exp_bytes / f.psram_bw.value;
    b.sample_add_s =
        in.head ? 0.0 : split_add / f.clock_hz.value + mem * 4.0 * rows / f.psram_bw.value;
    b.sample_top_s = split_top / f.clock_hz.value + mem * split_top_bytes / f.psram_bw.value;
  }
  b.link_s = wire_seconds(b.link_bytes, in.baud);
  return b;
}

double generation_path_s(const std::vector<BoardCost>& boards) {
  double t = 0;
  for (const BoardCost& b : boards) t += b.board_s() + b.link_s;
  return t;
}

double generation_path_split_s(const std::vector<BoardCost>& boards, uint32_t dim, uint32_t baud,
                               bool logits, bool sampled) {
  const size_t n = boards.size();
  double layers = 0;
  for (const BoardCost& b : boards) {
    layers +=
        b.board_s() - b.classifier_s - b.sample_exp_s - b.sample_add_s - b.sample_top_s + b.link_s;
  }
  if (n == 0) return 0;
  const double hop_x = wire_seconds(classify_frame_bytes(dim), baud);
  double slices = boards[0].classifier_s;
  for (size_t k = 1; k < n; k++) {
    if (boards[k].classifier_rows == 0) continue;
    const double hop_r =
        wire_seconds(classifier_reply_bytes(dim, boards[k].classifier_rows, logits), baud);
    slices = std::max(slices, k * hop_x + boards[k].classifier_s + (n - k) * hop_r);
  }
  if (!sampled) return layers + slices;
  // The split sampler's rounds (see the header).
  const double hop_c = wire_seconds(sample_chain_frame_bytes(), baud);
  const double hop_t = wire_seconds(sample_top_frame_bytes(), baud);
  const double hop_cands = wire_seconds(sample_cands_frame_bytes(dim), baud);
  double exps = boards[0].sample_exp_s, adds = boards[0].sample_add_s;
  double top = boards[0].sample_top_s;
  for (size_t k = 1; k < n; k++) {
    exps = std::max(exps, k * hop_c + boards[k].sample_exp_s);
    adds += boards[k].sample_add_s;
    top = std::max(top, k * hop_t + boards[k].sample_top_s + (n - k) * hop_cands);
  }
  return layers + slices + exps + adds + n * hop_c + top;
}

double prompt_token_s(const std::vector<BoardCost>& boards, uint32_t window) {
  // A board's UART driver sends from its TX buffer while the board computes the next position,
  // so a busy board is limited by the slower of its work and its wire.
  double slowest = 0;
  for (const BoardCost& b : boards) slowest = std::max(slowest, std::max(b.board_s(), b.link_s));
  return std::max(slowest, generation_path_s(boards) / std::max(1u, window));
}

double chunk_board_s(const BoardCost& b, uint32_t count) {
  // psram_s covers weight, KV and scratch bytes at one bandwidth: split it by bytes.
  const uint64_t psram = b.psram_bytes();
  const double weight_psram_s = psram ? b.psram_s * (double)b.weight_psram / (double)psram : 0.0;
  const double weights_s = b.flash_s + b.sram_s + weight_psram_s;
  const double per_position_s = b.psram_s - weight_psram_s + b.compute_s;
  return weights_s + count * per_position_s + b.handoff_s;
}

uint64_t chunk_frame_bytes(uint32_t count, uint32_t dim) {
  // ACTIVATION_BATCH: framing 12 + header 16 + count x dim floats (docs/PROTOCOL.md).
  return count <= 1 ? activation_frame_bytes(dim) : 12 + 16 + 4ull * count * dim;
}

double prompt_chunks_s(const std::vector<BoardCost>& boards, uint32_t positions, uint32_t chunk,
                       uint32_t window, uint32_t dim, uint32_t baud) {
  const size_t n = boards.size();
  if (n == 0 || positions == 0) return 0;
  if (chunk == 0) chunk = 1;
  if (window == 0) window = 1;
  const uint32_t chunks = (positions + chunk - 1) / chunk;
  // The resources in a chunk's order. One board: its layers. A ring: wire 0, stage 1, wire 1,
  // ..., stage N-1, wire N-1, the head's layers (even r: a wire; odd r: board (r+1)/2 mod N).
  // The head's embedding (one row read per position) is left out: next to a layer it is noise.
  const size_t resources = n == 1 ? 1 : 2 * n;
  std::vector<double> done(resources, 0.0);   // when each resource finished its last chunk
  std::vector<double> finished(chunks, 0.0);  // when chunk j left the last resource
  for (uint32_t j = 0; j < chunks; j++) {
    const uint32_t count = std::min(chunk, positions - j * chunk);
    const double wire = wire_seconds(chunk_frame_bytes(count, dim), baud);
    double t = j >= window ? finished[j - window] : 0.0;  // the window admits it
    for (size_t r = 0; r < resources; r++) {
      const double work =
          n > 1 && r % 2 == 0 ? wire : chunk_board_s(boards[n == 1 ? 0 : ((r + 1) / 2) % n], count);
      t = std::max(t, done[r]) + work;
      done[r] = t;
    }
    finished[j] = t;
  }
  return finished[chunks - 1];
}

}  // namespace llmwire
