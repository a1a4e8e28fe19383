// The one planner: which layers go on which board, whether each board's image fits its
// flash partition and its RAM fits PSRAM/SRAM, what each board streams per token, and a
// per-token time estimate from the board profile's bandwidths. `plan`, `split` and
// `convert` all use it, so the numbers a user sees are the ones the firmware lives with.
#pragma once

#include <stdint.h>

#include <string>
#include <vector>

#include "engine/image.h"
#include "tools/cost_model.h"

namespace llmwire {

// A board type: capacities, and the speeds the cost model uses (with their sources).
struct BoardProfile {
  std::string name;
  std::string description;
  uint64_t partition_bytes = 0;  // model data partition
  uint64_t psram_bytes = 0;      // usable for the KV cache and big buffers
  uint64_t sram_bytes = 0;       // usable internal RAM for activations and scratch
  CostFigures cost = esp32s3_scalar_figures();
};

// Built-in profiles: esp32s3-16mb (N16R8, the reference board), esp32s3-8mb (N8R2),
// esp32s3-32mb (N32R8), and rv32-emulated (the qemu board of `sim --emulate`).
const std::vector<BoardProfile>& board_profiles();
bool find_profile(const std::string& name, BoardProfile* out);

// Byte sizes of every part of a model, exact from an image or computed from a config.
struct ModelSizes {
  ImageInfo info;  // config, weight type, group, kv type (stage fields ignored)
  uint64_t embedding = 0, classifier = 0, rms_final = 0, tokenizer = 0;
  std::vector<uint64_t> layer;                       // bytes of each layer's tensors
  std::vector<std::vector<uint64_t>> layer_tensors;  // each tensor of each layer, in order
  std::vector<uint64_t> tokenizer_tensors;           // the tokenizer's arrays
  bool tokenizer_estimated = false;
  uint64_t embedding_row = 0;
};

bool sizes_from_image(const Image& image, ModelSizes* out, std::string* err);
// From a config + quantization (tokenizer bytes estimated from the vocabulary size).
ModelSizes sizes_from_config(const ModelConfig& c, WeightType w, uint32_t group, KvType kv);

struct PlanRequest {
  uint32_t boards = 0;   // 0: find the smallest number that fits
  uint32_t seq_len = 0;  // 0: the model's
  KvType kv = KvType::kF32;
  uint32_t baud = 460800;                             // link speed for the estimate
  std::vector<std::pair<uint32_t, uint32_t>> forced;  // user-given layer ranges (split --layers)
  // Weight placement as the boards compute it at boot (runtime/placement.h).
  bool place_weights = true;
  // Classifier rows split over every board (issue 9 item 3), merged at the head; the runtime
  // side takes Plan::classifier_slices.
  bool split_classifier = false;
  // Position the per-token estimates are for (>= seq: seq / 2, the mean of a full context).
  uint32_t estimate_pos = UINT32_MAX;
  bool greedy = false;  // the head picks the arg max instead of top-p sampling
  // With split_classifier: rows per stage (head first) given by the user (`split
  // --classifier-slices even|R0,R1,...`); empty: the planner chooses (choose_classifier_rows).
  std::vector<uint32_t> classifier_rows;
};

struct BoardPlan {
  uint32_t stage = 0;  // ring order: 0 = head
  uint32_t layer_begin = 0, layer_end = 0;
  bool head = false;
  uint64_t image_bytes = 0;
  uint64_t kv_bytes = 0, activation_bytes = 0, link_buffer_bytes = 0;
  uint64_t psram_used = 0, sram_used = 0;
  uint64_t weight_bytes_per_token = 0;
  uint64_t link_bytes_per_token = 0;  // bytes this board sends per generated token
  BoardCost gen;                      // a generated token at the plan's estimate position
  BoardCost prompt;                   // a prompt token (no classifier) at the same position
  // The prompt estimate's per-position costs (Plan::prompt_s): at the middle of a prompt of
  // kPromptEstimateTokens, without and with the classifier.
  BoardCost prompt_short, gen_short;
  bool fits_flash = false, fits_ram = false;
  // Classifier rows [classifier_begin, classifier_end) this board computes.
  uint32_t classifier_begin = 0, classifier_end = 0;
  uint32_t classifier_room_rows = 0;  // classifier rows its flash partition still holds
  // Weight placement at boot: what goes where (bytes include arena alignment).
  PlacementTotals placement;
  uint64_t placed_layer_big = 0, placed_layer_fast = 0;
  WeightRegion classifier_region = WeightRegion::kFlash;
};

struct Plan {
  bool fits = false;
  uint32_t seq_len = 0;
  KvType kv = KvType::kF32;
  uint32_t max_seq = 0;           // largest seq this split fits at (0: none)
  std::vector<BoardPlan> boards;  // indexed by stage
  uint32_t estimate_pos = 0;      // position the per-token estimates are for (seq / 2: the mean)
  double token_s = 0;             // estimated critical path of a generated token, whole ring
  double prompt_token_s = 0;      // estimated time per prompt token, streamed (steady state)
  uint32_t prompt_window = 0;     // positions in flight while streaming a prompt
  // A prompt of prompt_tokens (issue 9 item 4), estimated critical paths on this ring:
  uint32_t prompt_tokens = 0;
  uint32_t prompt_chunk = 0;      // positions per chunk: the fastest of 1..prompt_chunk_max
  uint32_t prompt_chunk_max = 0;  // the most a frame holds that every board's RAM allows
  double prompt_s = 0;            // in chunks (then the last token alone, with the classifier)
  double prompt_stream_s = 0;     // position by position, `prompt_window` in flight (chunk 1)
  double prompt_serial_s = 0;     // every token through all layers and the classifier in turn
  double link_share = 0;          // fraction of token_s spent on the wires
  std::string advice;             // when nothing fits: what would
  // Classifier rows of each board, indexed by stage; the head's alone holds [0, vocab) unless
  // the request split the classifier.
  std::vector<std::pair<uint32_t, uint32_t>> classifier_slices;
  bool classifier_split = false;
};

// The prompt length Plan::prompt_s is estimated for (issue 9's target: a 32-token prompt).
constexpr uint32_t kPromptEstimateTokens = 32;

// Stage images hold the head's range last: stage 1 runs layers from 0, ..., the head
// (stage 0) runs the final range and the classifier.
Plan make_plan(const ModelSizes& m, const BoardProfile& board, const PlanRequest& req);
// Evaluates one given split (ranges indexed by stage).
Plan evaluate_split(const ModelSizes& m, const BoardProfile& board, uint32_t seq, KvType kv,
                    uint32_t baud, const std::vector<std::pair<uint32_t, uint32_t>>& ranges);
// The same with the request's options (placement, classifier split); seq, kv, baud from req.
Plan evaluate_split(const ModelSizes& m, const BoardProfile& board, const PlanRequest& req,
                    uint32_t seq, const std::vector<std::pair<uint32_t, uint32_t>>& ranges);
// The classifier slices (by stage) a plan with req.split_classifier uses for these layer
// ranges: req.classifier_rows if given, else choose_classifier_rows() from each board's time
// per row and flash room. The one function behind Plan::classifier_slices and `split
// --classifier-slices auto`.
std::vector<std::pair<uint32_t, uint32_t>> classifier_split_for(
    const ModelSizes& m, const BoardProfile& board, const PlanRequest& req, uint32_t seq,
    const std::vector<std::pair<uint32_t, uint32_t>>& ranges);
// Equal classifier slices for n boards (stage order), multiples of 8 rows except the last.
std::vector<std::pair<uint32_t, uint32_t>> classifier_slices_for(uint32_t vocab, uint32_t n);

// How every command prints a stage's layers: inclusive, "3-4" for layers 3 and 4 (the form
// --layers takes), "none" for a head without layers. Ranges are half-open [begin, end) inside.
std::string layer_range_text(uint32_t layer_begin, uint32_t layer_end);

// "0-2,3-5,6-7" in layer order ('-' = a board with no layers) -> ranges indexed by stage:
// the last range is the head's (stage 0), the others stages 1.. in order.
bool parse_layer_ranges(const std::string& text, uint32_t n_layers,
                        std::vector<std::pair<uint32_t, uint32_t>>* out, std::string* err);

}  // namespace llmwire
