// The cost model, in one place: what one board reads, computes and sends per token, and the
// time that takes on a board profile. The planner, `plan` and `bench` all use it. Every
// constant carries its source; docs/PLANNER.md explains the model.
#pragma once

#include <stdint.h>

#include <string>
#include <vector>

#include "engine/image.h"
#include "runtime/placement.h"

namespace llmwire {

// A figure of a board profile and where it comes from.
struct Figure {
  double value = 0;
  const char* source = "";
};

// The kernels whose multiply-accumulates the model counts separately.
enum class MacKind {
  kMatmulQ4,
  kMatmulQ8,
  kMatmulF32,
  kAttentionF32,
  kAttentionF16,
  kAttentionI8,
  kCount
};
constexpr int kKernelCount = (int)MacKind::kCount;
const char* kernel_name(MacKind k);

// The per-token work besides the multiply-accumulates, counted like them and charged at the
// profile's cycles per operation. What each counts is in board_cost() and docs/PLANNER.md.
enum class OpKind {
  kMatmulCall,    // one matmul call: dispatch, input setup
  kMatmulRow,     // one output row of a matmul call: row setup, scales, the float result
  kExp,           // exp_f32: SiLU (per hidden element), attention softmax (per score)
  kSinCos,        // the RoPE table: head_size / 2 per run of layers
  kQuantize,      // one activation element through the input quantizer
  kVector,        // one element of one pass of a norm, residual add, RoPE, KV store, embedding
  kScore,         // one attention score beyond its MACs and exp: division, max, normalising
  kSampleTopp,    // one vocabulary row through temperature, softmax and the top-p nucleus
  kSampleArgmax,  // one vocabulary row through greedy arg max
  kCount
};
constexpr int kOpCount = (int)OpKind::kCount;
const char* op_name(OpKind k);

// Speeds of one board type (bytes per second, cycles per multiply-accumulate, ...).
struct CostFigures {
  Figure clock_hz, cores, flash_bw, psram_bw, sram_bw;
  Figure cycles_per_mac[kKernelCount];
  Figure cycles_per_op[kOpCount];
  // false on an emulated board: qemu -icount charges instructions only, bytes cost no time.
  bool memory_timed = true;
  Figure handoff_s;          // waking the second core for one split kernel call and joining
  Figure min_parallel_macs;  // smaller calls stay on one core (RunOptions::min_parallel_macs)
};
// The ESP32-S3 figures (hardware-facts.md and the emulated-MCU counts), scalar kernels.
CostFigures esp32s3_scalar_figures();
// The same board with a PIE (EE.VMULAS.S8) q4/q8 matmul kernel: an ESTIMATE from the emulated
// LX7's instruction count of one fused load+MAC sequence (issue 9 / hardware-facts), until the
// kernel exists and is counted whole. `plan --kernel pie`.
CostFigures esp32s3_pie_figures();
// The emulated rv32 board (qemu-system-riscv32 -icount shift=0, src/platform/rv32): one
// instruction per virtual nanosecond, one core, memory free; per-operation instruction counts
// measured by bench/rv32/op_bench.cpp. `plan --board rv32-emulated` predicts what
// `sim --emulate --icount` measures (bench/plan_vs_emulated.sh).
CostFigures rv32_emulated_figures();
// Speeds of the weight regions in the form the runtime's placement takes.
RegionSpeeds region_speeds(const CostFigures& f);

// The shape-dependent quantities the model needs (filled by the planner's ModelSizes).
struct CostShape {
  ModelConfig config;
  WeightType weights = WeightType::kQ4;
  uint32_t group = 32;  // quantization group: a partial last group costs a whole one
  std::vector<std::vector<uint64_t>> layer_tensors;           // bytes of each tensor of each layer
  uint64_t embedding_row = 0, rms_final = 0, classifier = 0;  // classifier: embedding if shared
};

// One board's work for one token at position `pos`.
struct CostInput {
  uint32_t layer_begin = 0, layer_end = 0;
  bool head = false;       // embeds the token; with `classifier`, also the final norm + logits
  bool classifier = true;  // false for a prompt token that is not the last
  uint32_t pos = 0;        // attention reads positions 0..pos
  KvType kv = KvType::kF32;
  uint32_t stages = 1;  // boards in the ring: > 1 means this board sends one frame
  uint32_t baud = 460800;
  bool scratch_in_psram = true;  // logits and attention scores (the model's big region)
  // Weight placement (runtime/placement.h, computed at boot): bytes of this board's layer
  // tensors copied into PSRAM / SRAM, and where its classifier rows live.
  uint64_t layer_bytes_big = 0, layer_bytes_fast = 0;
  WeightRegion classifier_region = WeightRegion::kFlash;
  // Classifier rows this board computes when `classifier`: kAllRows on the head means the
  // whole vocabulary; with the classifier split across boards every board gets a slice.
  static constexpr uint32_t kAllRows = 0xFFFFFFFFu;
  uint32_t classifier_rows = kAllRows;
  // The head samples the next token after the classifier: top-p (temperature > 0, the
  // default story) or greedy arg max.
  bool sample_topp = true;
  // Top-p sampling on the slices (the split sampler, docs/PROTOCOL.md "Sampled classifier
  // split"): this board's classifier rows get their exponentials (SAMPLE_CHAIN PREPARE / SUM)
  // and the top-p scan (SAMPLE_TOP); nobody samples the whole vocabulary.
  bool split_sampler = false;
};

// Counted quantities and the time they take, per token, on one board.
struct BoardCost {
  // Weight bytes read by memory region (every weight byte is read once per token).
  uint64_t weight_flash = 0, weight_psram = 0, weight_sram = 0;
  uint64_t kv_read = 0, kv_written = 0;  // KV cache (PSRAM)
  uint64_t scratch_psram = 0;            // logits and attention scores read + written in PSRAM
  uint64_t macs[kKernelCount] = {};
  uint64_t ops[kOpCount] = {};
  double cycles = 0;         // every MAC and operation at the profile's cycles, before the cores
  double sample_s = 0;       // the head's sampling, part of compute_s (after the classifier)
  uint32_t split_calls = 0;  // kernel calls split over the cores
  uint64_t link_bytes = 0;   // sent by this board
  uint32_t link_frames = 0;
  // Seconds.
  double flash_s = 0, psram_s = 0, sram_s = 0, compute_s = 0, handoff_s = 0, link_s = 0;
  uint32_t classifier_rows = 0;
  // The part of board_s() spent on the classifier rows (their weights, MACs, logits and
  // hand-off): with the classifier split it runs after the layers, in parallel across boards.
  double classifier_s = 0;
  // The split sampler's parts of board_s(): the exponentials of the rows (scale, exp, written
  // back), their addition to the SUM chain, and the top-p scan (normalise, filter, summary).
  double sample_exp_s = 0, sample_add_s = 0, sample_top_s = 0;

  uint64_t total_macs() const;
  uint64_t psram_bytes() const { return weight_psram + kv_read + kv_written + scratch_psram; }
  double memory_s() const { return flash_s + psram_s + sram_s; }
  // The board's own work: memory and compute add (docs/PLANNER.md says why), then the hop.
  double board_s() const { return memory_s() + compute_s + handoff_s; }
};

BoardCost board_cost(const CostShape& shape, const CostFigures& f, const CostInput& in);

// Bytes of one ACTIVATION frame carrying a dim-float vector (framing + fields + CRC).
uint64_t activation_frame_bytes(uint32_t dim);
// Seconds on the wire for `bytes` at `baud`, 8N1 (10 bit times per byte).
double wire_seconds(uint64_t bytes, uint32_t baud);

// Across the ring, per token. A generated token goes round the ring once, each stage after the
// previous one: the critical path is the sum of every board's time and every hop. Prompt
// tokens stream with `window` positions in flight, so stages work at the same time and the
// steady-state time per prompt token is the slowest of: the busiest board (its work and its
// send), and one trip round the ring divided by the window.
double generation_path_s(const std::vector<BoardCost>& boards);
// The same with the classifier split across the boards (boards indexed by stage, 0 = head):
// the layers go round the ring as above; then the head sends the final normed activation
// round the ring once more, each board computes its slice as soon as the activation reaches
// it (board k after k hops), and its slice result (one small frame) travels on to the head.
// The head's own slice runs meanwhile. `baud` is the ring's.
// With `logits` each slice result carries its logits (a gathered vector). With `sampled`
// (the split sampler) two more rounds follow: PREPARE reaches board k after k hops and every
// board computes its exponentials at once, then the SUM chain goes round adding them, board
// after board; then SAMPLE_TOP reaches board k after k hops, each board scans its rows and
// its SAMPLE_CANDS travels on to the head (first batches only: a nucleus longer than a batch
// costs further rounds the estimate leaves out).
// Frame sizes: classify_frame_bytes(), classifier_reply_bytes() and sample_*_frame_bytes()
// (tools/classifier_slices.h, the messages of docs/PROTOCOL.md).
double generation_path_split_s(const std::vector<BoardCost>& boards, uint32_t dim, uint32_t baud,
                               bool logits = false, bool sampled = false);
double prompt_token_s(const std::vector<BoardCost>& boards, uint32_t window);

// ---- Prompts in chunks (issue 9 item 4, docs/PROTOCOL.md "Prompt chunks") ----
// One board's time for a chunk of `count` positions, from its cost of one position
// (`per_position`, no classifier): the weights are read once per chunk; MACs, KV and other
// PSRAM traffic once per position; the core hand-offs once per chunk (one kernel call per
// matrix for the whole chunk). ASSUMED: a batched kernel costs the same cycles per MAC as the
// single-vector one (it reuses decoded weights in fact, so this errs on the slow side).
double chunk_board_s(const BoardCost& per_position, uint32_t count);
// Bytes of one ACTIVATION_BATCH frame of `count` positions (ACTIVATION when count is 1).
uint64_t chunk_frame_bytes(uint32_t count, uint32_t dim);
// Critical path of prompt positions 0..positions-1 sent in chunks of `chunk` positions with
// `window` chunks in flight (boards indexed by stage, 0 = head; per-position costs without the
// classifier). The chunks pass a line of resources — the head's embedding, wire 0, stage 1,
// wire 1, ..., stage N-1, wire N-1, the head's layers — each working on one chunk at a time
// (a board's UART sends while it computes the next chunk), a chunk entering only when the
// chunk `window` places before it is done: the flow-shop recurrence, exact for this model.
double prompt_chunks_s(const std::vector<BoardCost>& boards, uint32_t positions, uint32_t chunk,
                       uint32_t window, uint32_t dim, uint32_t baud);

}  // namespace llmwire
