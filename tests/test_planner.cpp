// The planner: the fits it promises are real (image sizes equal the written stage images),
// the headline plans for the stories42M / stories110M shapes, and its cost model.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include "platform/host/mapped_file.h"
#include "test_util.h"
#include "tools/classifier_slices.h"
#include "tools/host_model.h"
#include "tools/planner.h"
#include "tools/split.h"
#include "tools/synth.h"

using namespace llmwire;
using llmwire::test::TempDir;

namespace {
BoardProfile board16() {
  BoardProfile b;
  EXPECT_TRUE(find_profile("esp32s3-16mb", &b));
  return b;
}
}  // namespace

TEST(Planner, Stories42MOnTwoBoards) {
  ModelConfig c;
  ASSERT_TRUE(shape_config("stories42M", &c));
  const ModelSizes m = sizes_from_config(c, WeightType::kQ4, 32, KvType::kF32);
  PlanRequest r;
  r.boards = 2;
  const Plan p32 = make_plan(m, board16(), r);  // 1024 does not fit: longest that does
  ASSERT_EQ(p32.boards.size(), 2u);
  EXPECT_GE(p32.seq_len, 300u);
  for (const BoardPlan& b : p32.boards) {
    EXPECT_TRUE(b.fits_flash && b.fits_ram) << "stage " << b.stage;
    EXPECT_LE(b.image_bytes, 0xE00000u);
  }
  r.kv = KvType::kF16;
  const Plan p16 = make_plan(m, board16(), r);
  EXPECT_GE(p16.seq_len, 600u);
  EXPECT_GT(p16.seq_len, p32.seq_len * 19 / 10);  // fp16 halves the cache
  std::printf("stories42M q4 on 2 x 16MB/8MB: seq %u (f32 KV), %u (f16 KV)\n", p32.seq_len,
              p16.seq_len);
}

TEST(Planner, Stories110MFewestBoards) {
  ModelConfig c;
  ASSERT_TRUE(shape_config("stories110M", &c));
  const ModelSizes m = sizes_from_config(c, WeightType::kQ4, 32, KvType::kF32);
  PlanRequest r;
  r.seq_len = 256;
  const Plan p = make_plan(m, board16(), r);
  ASSERT_TRUE(p.fits);
  // 12 layers of ~4 MB and a ~14 MB head: no fewer than 5 boards can hold the weights.
  EXPECT_EQ(p.boards.size(), 5u);
  r.boards = (uint32_t)p.boards.size() - 1;
  EXPECT_FALSE(make_plan(m, board16(), r).fits);
}

TEST(Planner, PlannedImageSizesAreTheWrittenOnes) {
  TempDir dir;
  const ModelConfig c = llmwire::test::small_config(64, 172, 5, 8, 4, 320, 64, false);
  const std::string img = llmwire::test::make_image(dir, c, WeightType::kQ4);
  MappedFile f;
  std::string err;
  ASSERT_TRUE(f.open(img, &err));
  Image im;
  ASSERT_EQ(im.open(f.data(), f.size()), Status::kOk);
  ModelSizes m;
  ASSERT_TRUE(sizes_from_image(im, &m, &err)) << err;
  BoardProfile tiny = board16();
  tiny.partition_bytes = 60000;  // forces a real split
  PlanRequest r;
  r.boards = 3;
  const Plan p = make_plan(m, tiny, r);
  ASSERT_TRUE(p.fits) << p.advice;
  std::vector<std::pair<uint32_t, uint32_t>> ranges;
  std::vector<std::string> paths;
  for (const BoardPlan& b : p.boards) {
    ranges.push_back({b.layer_begin, b.layer_end});
    paths.push_back(dir.file("p" + std::to_string(b.stage) + ".img"));
  }
  std::vector<uint64_t> sizes;
  ASSERT_TRUE(split_image(im, ranges, 0, KvType::kF32, paths, &sizes, &err)) << err;
  for (size_t k = 0; k < sizes.size(); k++) {
    struct stat st;
    ASSERT_EQ(stat(paths[k].c_str(), &st), 0);
    EXPECT_EQ((uint64_t)st.st_size, p.boards[k].image_bytes) << "stage " << k;
    EXPECT_LE((uint64_t)st.st_size, tiny.partition_bytes);
  }
}

TEST(Planner, LayerRangesParseInRingOrder) {
  std::vector<std::pair<uint32_t, uint32_t>> r;
  std::string err;
  ASSERT_TRUE(parse_layer_ranges("0-2,3-5", 6, &r, &err)) << err;
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0], std::make_pair(3u, 6u));  // the last range is the head's (stage 0)
  EXPECT_EQ(r[1], std::make_pair(0u, 3u));
  ASSERT_TRUE(parse_layer_ranges("0-1,2-5,-", 6, &r, &err)) << err;
  EXPECT_EQ(r[0], std::make_pair(6u, 6u));
  EXPECT_FALSE(parse_layer_ranges("0-2,4-5", 6, &r, &err));
  EXPECT_NE(err.find("without gaps"), std::string::npos);
  EXPECT_FALSE(parse_layer_ranges("0-2", 6, &r, &err));
  EXPECT_FALSE(parse_layer_ranges("0-x", 6, &r, &err));
}

// The cost model (tools/cost_model.h): counted quantities by hand, times as the documented
// formulas, and the properties any faithful model has.
namespace {

// small_config(64, 172, 3 layers, 8 heads, 4 KV heads, vocab 320): kv_dim 32.
ModelSizes small_sizes() {
  const ModelConfig c = llmwire::test::small_config(64, 172, 3, 8, 4, 320, 32, true);
  return sizes_from_config(c, WeightType::kQ4, 32, KvType::kF32);
}

CostShape shape_of(const ModelSizes& m) {
  CostShape s;
  s.config = m.info.config;
  s.weights = m.info.weight_type;
  s.layer_tensors = m.layer_tensors;
  s.embedding_row = m.embedding_row;
  s.rms_final = m.rms_final;
  s.classifier = m.classifier ? m.classifier : m.embedding;
  return s;
}

// One core, 1 MHz, 2 cycles per q4 MAC and 3 per attention MAC, no other operation costs:
// compute time by hand.
CostFigures simple_figures() {
  CostFigures f = esp32s3_scalar_figures();
  for (Figure& o : f.cycles_per_op) o.value = 0;
  f.cores.value = 1;
  f.clock_hz.value = 1e6;
  f.cycles_per_mac[(int)MacKind::kMatmulQ4].value = 2;
  f.cycles_per_mac[(int)MacKind::kAttentionF32].value = 3;
  return f;
}

CostInput whole_model_at(uint32_t pos) {
  CostInput in;
  in.layer_begin = 0;
  in.layer_end = 3;
  in.head = true;
  in.pos = pos;
  return in;
}

}  // namespace

TEST(CostModel, CountsByHand) {
  const ModelSizes m = small_sizes();
  const BoardCost b = board_cost(shape_of(m), simple_figures(), whole_model_at(9));
  // Per layer: q 64x64, k 32x64, v 32x64, o 64x64, w1/w3 172x64, w2 64x172 = 45,312 MACs;
  // 3 layers + classifier 320x64 = 156,416.
  EXPECT_EQ(b.macs[(int)MacKind::kMatmulQ4], 156416u);
  // Attention at position 9 reads 10 positions: q.k and att.v, 2 x 64 x 10 per layer.
  EXPECT_EQ(b.macs[(int)MacKind::kAttentionF32], 3u * 1280);
  EXPECT_EQ(b.kv_read, 3u * 2 * 64 * 10 * 4);  // every query head reads its KV head's slice
  EXPECT_EQ(b.kv_written, 3u * 2 * 32 * 4);    // one key and one value of kv_dim floats
  EXPECT_EQ(b.scratch_psram, 2u * 4 * 320);    // logits written, then read by sampling
  EXPECT_EQ(b.link_bytes, 0u);                 // one board: no wire
  EXPECT_EQ(b.link_frames, 0u);
  // Compute: (156,416 x 2 + 3,840 x 3) cycles at 1 MHz on one core, plus w2's partial last
  // group (172 columns cost 192: 64 x 20 x 2 cycles a layer).
  EXPECT_NEAR(b.compute_s, 0.324352 + 3 * 2560e-6, 1e-9);
  EXPECT_EQ(b.split_calls, 0u);
  EXPECT_DOUBLE_EQ(b.handoff_s, 0.0);
  // Two cores, calls of >= 10,000 MACs split (w1, w2, w3 of each layer and the classifier):
  // one core runs 3 x (12,288 x 2) + 11,520 cycles, the split calls (3 x 33,024 + 20,480) x 2
  // cycles take half that.
  CostFigures two = simple_figures();
  two.cores.value = 2;
  two.min_parallel_macs.value = 10000;
  const BoardCost b2 = board_cost(shape_of(m), two, whole_model_at(9));
  EXPECT_EQ(b2.split_calls, 10u);
  EXPECT_NEAR(b2.compute_s, (85248 + (239104 + 3 * 2560) / 2.0) / 1e6, 1e-9);
  EXPECT_NEAR(b2.handoff_s, 10 * two.handoff_s.value, 1e-12);
  // A prompt token that is not the last: no classifier, no logits.
  CostInput p = whole_model_at(9);
  p.classifier = false;
  const BoardCost bp = board_cost(shape_of(m), simple_figures(), p);
  EXPECT_EQ(bp.macs[(int)MacKind::kMatmulQ4], 3u * 45312);
  EXPECT_EQ(bp.scratch_psram, 0u);
  EXPECT_EQ(bp.weight_flash, b.weight_flash - m.rms_final - m.embedding);
}

// The work besides the MACs (what the emulated ring measures, bench/plan_vs_emulated.sh), counted
// by hand from Model::run_layers, head() and the sampler for the small model at position 9.
TEST(CostModel, OtherWorkCountsByHand) {
  const ModelSizes m = small_sizes();
  CostFigures f = simple_figures();
  for (Figure& c : f.cycles_per_mac) c.value = 0;
  for (Figure& o : f.cycles_per_op) o.value = 1;  // cycles = operations
  const BoardCost b = board_cost(shape_of(m), f, whole_model_at(9));
  auto ops = [&](OpKind k) { return b.ops[(int)k]; };
  EXPECT_EQ(ops(OpKind::kMatmulCall), 3u * 7 + 1);  // q k v o w1 w2 w3, the classifier
  EXPECT_EQ(ops(OpKind::kMatmulRow), 3u * (64 + 32 + 32 + 64 + 172 + 64 + 172) + 320);
  EXPECT_EQ(ops(OpKind::kExp), 3u * (172 + 8 * 10));  // SiLU; softmax of 8 heads x 10 scores
  EXPECT_EQ(ops(OpKind::kScore), 3u * 8 * 10);
  EXPECT_EQ(ops(OpKind::kSinCos), 4u);  // head size 8: one table of 4 pairs
  EXPECT_EQ(ops(OpKind::kQuantize), 3u * (3 * 64 + 172) + 64);
  // Embedding 4 x 64; RoPE table 4; per layer norms 4 x 64, residuals 2 x 64, RoPE 64 + 32,
  // SiLU products 2 x 172, KV store 2 x 32; final norm 2 x 64.
  EXPECT_EQ(ops(OpKind::kVector), 256u + 4 + 3 * (256 + 128 + 96 + 344 + 64) + 128);
  EXPECT_EQ(ops(OpKind::kSampleTopp), 320u);
  EXPECT_EQ(ops(OpKind::kSampleArgmax), 0u);
  uint64_t total = 0;
  for (uint64_t n : b.ops) total += n;
  EXPECT_DOUBLE_EQ(b.cycles, (double)total);
  EXPECT_DOUBLE_EQ(b.sample_s, 320 / f.clock_hz.value);
  EXPECT_DOUBLE_EQ(b.compute_s, total / f.clock_hz.value);
  // Greedy: an arg max over the rows instead; a prompt token: no classifier, no sampling.
  CostInput g = whole_model_at(9);
  g.sample_topp = false;
  EXPECT_EQ(board_cost(shape_of(m), f, g).ops[(int)OpKind::kSampleArgmax], 320u);
  g.classifier = false;
  const BoardCost p = board_cost(shape_of(m), f, g);
  EXPECT_EQ(p.ops[(int)OpKind::kSampleArgmax] + p.ops[(int)OpKind::kSampleTopp], 0u);
  EXPECT_EQ(p.ops[(int)OpKind::kMatmulRow], 3u * 600);
  // An int8 KV cache quantizes what it stores instead of copying it.
  CostInput i8 = whole_model_at(9);
  i8.kv = KvType::kI8;
  const BoardCost q = board_cost(shape_of(m), f, i8);
  EXPECT_EQ(q.ops[(int)OpKind::kQuantize], ops(OpKind::kQuantize) + 3 * 64);
  EXPECT_EQ(q.ops[(int)OpKind::kVector], ops(OpKind::kVector) - 3 * 64);
}

// The emulated board's profile: instructions only, memory free, one core.
TEST(CostModel, Rv32EmulatedProfileCountsInstructionsOnly) {
  BoardProfile rv;
  ASSERT_TRUE(find_profile("rv32-emulated", &rv));
  const ModelSizes m = small_sizes();
  const BoardCost b = board_cost(shape_of(m), rv.cost, whole_model_at(9));
  EXPECT_GT(b.weight_flash, 0u);
  EXPECT_DOUBLE_EQ(b.memory_s(), 0.0);
  EXPECT_EQ(b.split_calls, 0u);
  EXPECT_DOUBLE_EQ(b.compute_s, b.cycles / 1e9);  // one instruction per virtual ns
}

TEST(CostModel, MemoryTimeIsBytesOverBandwidthAndAddsToCompute) {
  const ModelSizes m = small_sizes();
  CostFigures f = simple_figures();
  const BoardCost b = board_cost(shape_of(m), f, whole_model_at(20));
  EXPECT_GT(b.weight_flash, 0u);
  EXPECT_DOUBLE_EQ(b.flash_s, b.weight_flash / f.flash_bw.value);
  EXPECT_DOUBLE_EQ(b.psram_s, (b.kv_read + b.kv_written + b.scratch_psram) / f.psram_bw.value);
  EXPECT_DOUBLE_EQ(b.board_s(), b.flash_s + b.psram_s + b.sram_s + b.compute_s + b.handoff_s);
  f.flash_bw.value *= 2;
  const BoardCost fast = board_cost(shape_of(m), f, whole_model_at(20));
  EXPECT_DOUBLE_EQ(fast.flash_s, b.flash_s / 2);
  EXPECT_DOUBLE_EQ(fast.compute_s, b.compute_s);
}

TEST(CostModel, EngineReadsTheWeightBytesTheModelCounts) {
  TempDir dir;
  const ModelConfig c = llmwire::test::small_config(64, 172, 3, 8, 4, 320, 32, false);
  const std::string img = llmwire::test::make_image(dir, c, WeightType::kQ4);
  MappedFile f;
  std::string err;
  ASSERT_TRUE(f.open(img, &err));
  Image im;
  ASSERT_EQ(im.open(f.data(), f.size()), Status::kOk);
  ModelSizes m;
  ASSERT_TRUE(sizes_from_image(im, &m, &err)) << err;
  HostModel hm;
  std::string hint;
  ASSERT_TRUE(hm.load(img, RunOptions{}, 1, &err, &hint)) << err;
  hm.model().reset_counters();
  const float* logits = nullptr;
  ASSERT_EQ(hm.forward(1, 0, true, &logits), Status::kOk);
  const BoardCost b = board_cost(shape_of(m), esp32s3_scalar_figures(), whole_model_at(0));
  EXPECT_EQ(b.weight_flash, hm.model().weight_bytes_read());
}

TEST(CostModel, SequentialStagesAddAndTwoBoardsInSeriesAreNotFaster) {
  ModelConfig c;
  ASSERT_TRUE(shape_config("stories15M", &c));
  const ModelSizes m = sizes_from_config(c, WeightType::kQ4, 32, KvType::kF32);
  PlanRequest r;
  r.boards = 1;
  r.place_weights = false;  // every weight byte from flash: the same bytes on either ring
  const Plan one = make_plan(m, board16(), r);
  r.boards = 2;
  const Plan two = make_plan(m, board16(), r);
  ASSERT_TRUE(one.fits && two.fits);
  double sum = 0;
  for (const BoardPlan& b : two.boards) {
    sum += b.gen.board_s() + b.gen.link_s;
    EXPECT_EQ(b.gen.link_frames, 1u);
    EXPECT_DOUBLE_EQ(b.gen.link_s, activation_frame_bytes(c.dim) * 10.0 / r.baud);
  }
  EXPECT_DOUBLE_EQ(two.token_s, sum);
  // The same bytes and MACs, split over two boards that work one after the other, plus hops.
  uint64_t flash1 = one.boards[0].gen.weight_flash, flash2 = 0,
           macs1 = one.boards[0].gen.total_macs(), macs2 = 0;
  for (const BoardPlan& b : two.boards) {
    flash2 += b.gen.weight_flash;
    macs2 += b.gen.total_macs();
  }
  EXPECT_EQ(flash1, flash2);
  EXPECT_EQ(macs1, macs2);
  EXPECT_GT(two.token_s, one.token_s);
  // A streamed prompt overlaps the boards: no faster than the busiest board, and two boards
  // beat one.
  for (const BoardPlan& b : two.boards) EXPECT_GE(two.prompt_token_s, b.prompt.board_s());
  EXPECT_GE(two.prompt_token_s, (two.boards[0].prompt.board_s() + two.boards[0].prompt.link_s +
                                 two.boards[1].prompt.board_s() + two.boards[1].prompt.link_s) /
                                    two.prompt_window);
  EXPECT_LT(two.prompt_token_s, one.prompt_token_s);
  EXPECT_DOUBLE_EQ(one.prompt_token_s, one.boards[0].prompt.board_s());
}

TEST(CostModel, MoreCyclesPerMacNeverMakesAPlanFaster) {
  ModelConfig c;
  ASSERT_TRUE(shape_config("stories15M", &c));
  const ModelSizes m = sizes_from_config(c, WeightType::kQ4, 32, KvType::kF32);
  for (uint32_t n : {1u, 2u, 3u}) {
    PlanRequest r;
    r.boards = n;
    BoardProfile b = board16();
    double prev_token = 0, prev_prompt = 0;
    for (double cpm : {0.14, 1.0, 4.0, 12.1, 30.0}) {
      b.cost.cycles_per_mac[(int)MacKind::kMatmulQ4].value = cpm;
      const Plan p = make_plan(m, b, r);
      ASSERT_TRUE(p.fits);
      EXPECT_GT(p.token_s, prev_token) << n << " boards, " << cpm << " cycles/MAC";
      EXPECT_GE(p.prompt_token_s, prev_prompt) << n << " boards, " << cpm << " cycles/MAC";
      prev_token = p.token_s;
      prev_prompt = p.prompt_token_s;
    }
  }
}

TEST(CostModel, Int8KvHoldsStories42MAtFullContextOnTwoBoards) {
  ModelConfig c;
  ASSERT_TRUE(shape_config("stories42M", &c));
  const ModelSizes m = sizes_from_config(c, WeightType::kQ4, 32, KvType::kF32);
  PlanRequest r;
  r.boards = 2;
  r.kv = KvType::kF16;
  const Plan f16 = make_plan(m, board16(), r);
  EXPECT_FALSE(f16.fits);
  EXPECT_NE(f16.advice.find("--kv i8 it fits at seq 1024"), std::string::npos) << f16.advice;
  r.kv = KvType::kI8;
  const Plan i8 = make_plan(m, board16(), r);
  EXPECT_TRUE(i8.fits);
  EXPECT_EQ(i8.seq_len, 1024u);
  uint64_t kv = 0;
  for (const BoardPlan& b : i8.boards) kv += b.kv_bytes;
  // 8 layers x 2 x 1024 positions x (512 int8 + 8 float scales).
  EXPECT_EQ(kv, 8ull * 2 * 1024 * (512 + 8 * 4));
  // Attention reads a quarter of the f32 bytes plus the scales, with the int8 loop.
  const BoardPlan& h = i8.boards[0];
  EXPECT_GT(h.gen.macs[(int)MacKind::kAttentionI8], 0u);
  EXPECT_EQ(h.gen.macs[(int)MacKind::kAttentionF32], 0u);
}

TEST(CostModel, PlacementMovesWeightBytesToPsramAndOnlyHelps) {
  ModelConfig c;
  ASSERT_TRUE(shape_config("stories15M", &c));
  const ModelSizes m = sizes_from_config(c, WeightType::kQ4, 32, KvType::kF32);
  for (uint32_t n : {1u, 2u}) {
    PlanRequest r;
    r.boards = n;
    r.kv = KvType::kI8;
    r.place_weights = false;
    const Plan flash = make_plan(m, board16(), r);
    r.place_weights = true;
    const Plan placed = make_plan(m, board16(), r);
    ASSERT_TRUE(flash.fits && placed.fits);
    uint64_t w0 = 0, w1 = 0, psram = 0;
    for (size_t k = 0; k < n; k++) {
      w0 += flash.boards[k].weight_bytes_per_token;
      w1 += placed.boards[k].weight_bytes_per_token;
      psram += placed.boards[k].gen.weight_psram;
      EXPECT_EQ(flash.boards[k].gen.weight_psram, 0u);
      // What was placed fits the RAM the board had left.
      EXPECT_LE(placed.boards[k].psram_used + placed.boards[k].placement.big_bytes,
                board16().psram_bytes);
    }
    EXPECT_EQ(w0, w1);  // the same bytes, read from elsewhere
    EXPECT_GT(psram, 0u);
    EXPECT_LT(placed.token_s, flash.token_s);
  }
}

TEST(CostModel, SplitClassifierRunsSlicesInParallel) {
  // By hand: two boards; layers take 10 + 20 ms plus 5 ms hops; slices 8 ms (head) and 6 ms.
  std::vector<BoardCost> b(2);
  b[0].compute_s = 0.010 + 0.008;
  b[0].classifier_s = 0.008;
  b[0].classifier_rows = 100;
  b[0].link_s = 0.005;
  b[1].compute_s = 0.020 + 0.006;
  b[1].classifier_s = 0.006;
  b[1].classifier_rows = 100;
  b[1].link_s = 0.005;
  const uint32_t dim = 288, baud = 460800;
  // The CLASSIFY frame out, a CLASS_SLICE back (docs/PROTOCOL.md): 12 + 12 + 4 dim, 12 + 28.
  const double hop_x = wire_seconds(12 + 12 + 4 * dim, baud);
  const double hop_r = wire_seconds(12 + 28, baud);
  EXPECT_NEAR(generation_path_split_s(b, dim, baud), 0.040 + std::max(0.008, hop_x + 0.006 + hop_r),
              1e-12);
  // The split sampler by hand: exponentials 3 ms (head) and 4 ms after PREPARE's hop, the
  // worker's additions 1 ms, the SUM chain's two hops; top-p scans 2 ms (head) and 1 ms
  // between SAMPLE_TOP's hop and SAMPLE_CANDS' (32 candidates at dim 288) back.
  b[0].sample_exp_s = 0.003;
  b[0].sample_top_s = 0.002;
  b[1].sample_exp_s = 0.004;
  b[1].sample_add_s = 0.001;
  b[1].sample_top_s = 0.001;
  b[0].compute_s += 0.005;
  b[1].compute_s += 0.006;
  const double hop_c = wire_seconds(12 + 36, baud), hop_t = wire_seconds(12 + 36, baud);
  const double hop_cands = wire_seconds(12 + 32 + 8 * 32, baud);
  EXPECT_NEAR(generation_path_split_s(b, dim, baud, false, true),
              0.040 + std::max(0.008, hop_x + 0.006 + hop_r) + std::max(0.003, hop_c + 0.004) +
                  0.001 + 2 * hop_c + std::max(0.002, hop_t + 0.001 + hop_cands),
              1e-12);

  ModelConfig c;
  ASSERT_TRUE(shape_config("stories15M", &c));
  const ModelSizes m = sizes_from_config(c, WeightType::kQ4, 32, KvType::kF32);
  BoardProfile pie = board16();
  pie.cost = esp32s3_pie_figures();
  PlanRequest r;
  r.kv = KvType::kI8;
  r.baud = 2000000;
  r.split_classifier = true;
  r.greedy = true;  // the slices merge by arg max
  r.boards = 1;
  const Plan one = make_plan(m, pie, r);
  r.boards = 2;
  const Plan two = make_plan(m, pie, r);
  r.split_classifier = false;
  const Plan whole = make_plan(m, pie, r);
  ASSERT_TRUE(one.fits && two.fits && whole.fits);
  // The slices cover the vocabulary once, in order, and the plan says so.
  ASSERT_EQ(two.classifier_slices.size(), 2u);
  EXPECT_TRUE(two.classifier_split);
  EXPECT_EQ(two.classifier_slices[0].first, 0u);
  EXPECT_EQ(two.classifier_slices[0].second, two.classifier_slices[1].first);
  EXPECT_EQ(two.classifier_slices[1].second, c.vocab_size);
  EXPECT_GT(two.boards[1].gen.classifier_rows, 0u);
  EXPECT_EQ(whole.boards[1].gen.classifier_rows, 0u);
  // Two boards working at once beat one board, and the split beats the whole classifier.
  EXPECT_LT(two.token_s, one.token_s);
  EXPECT_LT(two.token_s, whole.token_s);
  // Top-p sampling on the slices (the split sampler) costs its rounds, still well under the
  // whole classifier and sampler at the head.
  r.greedy = false;
  const Plan sampled_whole = make_plan(m, pie, r);
  r.split_classifier = true;
  const Plan sampled = make_plan(m, pie, r);
  EXPECT_GT(sampled.token_s, two.token_s);
  EXPECT_LT(sampled.token_s, sampled_whole.token_s);
  EXPECT_LT(sampled.token_s, 0.9 * sampled_whole.token_s);
}

// split --classifier-slices: the rows per board it writes.
TEST(ClassifierSlices, ParseBalanceAndLinkBytes) {
  std::vector<uint32_t> rows;
  std::string err;
  ASSERT_TRUE(parse_classifier_rows("even", 10, 3, &rows, &err)) << err;
  EXPECT_EQ(rows, (std::vector<uint32_t>{4, 3, 3}));
  ASSERT_TRUE(parse_classifier_rows("6,0,4", 10, 3, &rows, &err)) << err;
  EXPECT_EQ(rows, (std::vector<uint32_t>{6, 0, 4}));
  EXPECT_FALSE(parse_classifier_rows("6,4", 10, 3, &rows, &err));     // a board short
  EXPECT_FALSE(parse_classifier_rows("6,0,5", 10, 3, &rows, &err));   // 11 rows
  EXPECT_FALSE(parse_classifier_rows("0,5,5", 10, 3, &rows, &err));   // the head needs one
  EXPECT_FALSE(parse_classifier_rows("6,-1,5", 10, 3, &rows, &err));  // not a count
  EXPECT_FALSE(parse_classifier_rows("6,,4", 10, 3, &rows, &err));
  EXPECT_FALSE(parse_classifier_rows("even", 10, 1, &rows, &err));
  EXPECT_NE(err.find("2 boards"), std::string::npos) << err;

  // Equal speeds, stage k starting k row-times late: finish together.
  rows = balance_classifier_rows(1000, {0, 10, 20}, {1, 1, 1});
  EXPECT_EQ(rows[0] + rows[1] + rows[2], 1000u);
  EXPECT_NEAR(rows[0], 343, 1);
  EXPECT_NEAR(rows[1], 333, 1);
  EXPECT_NEAR(rows[2], 323, 1);
  // A stage that starts after the head would have finished alone gets nothing.
  rows = balance_classifier_rows(100, {0, 500}, {1, 1});
  EXPECT_EQ(rows, (std::vector<uint32_t>{100, 0}));
  // A twice-as-fast worker takes twice the rows.
  rows = balance_classifier_rows(300, {0, 0}, {2, 1});
  EXPECT_EQ(rows, (std::vector<uint32_t>{100, 200}));

  // dim 64, rows 256 + 256 on 2 boards: one CLASSIFY (12 + 256 bytes + 12 framing) to stage 1
  // and one CLASS_SLICE (28 + 12) back; sampling adds 256 floats in ceil(256/63) = 5 frames.
  EXPECT_EQ(classifier_round_link_bytes(64, {256, 256}, false), 280u + 40u);
  EXPECT_EQ(classifier_round_link_bytes(64, {256, 256}, true), 280u + 40u + 5 * 28 + 1024);
  // 3 boards: stage 1's answers cross two hops.
  EXPECT_EQ(classifier_round_link_bytes(64, {2, 1, 1}, false), 2 * 280u + 2 * 40 + 40);
  EXPECT_EQ(classifier_round_link_bytes(64, {512}, false), 0u);
}

// Prompts in chunks (issue 9 item 4): the flow-shop critical path by hand on a made-up ring,
// and the plan's estimate for the stories15M shape on two boards.
TEST(CostModel, PromptChunksByHand) {
  // Two boards; per position: the head 1 s of compute, stage 1 2 s of compute, and 3 s of
  // weights from flash each (read once per chunk).
  BoardCost head, worker;
  head.compute_s = 1;
  head.flash_s = 3;
  worker.compute_s = 2;
  worker.flash_s = 3;
  EXPECT_DOUBLE_EQ(chunk_board_s(worker, 4), 3 + 4 * 2);
  // PSRAM time splits into weights (once per chunk) and KV (per position) by bytes.
  BoardCost p;
  p.weight_psram = 300;
  p.kv_read = 100;
  p.psram_s = 4;
  EXPECT_DOUBLE_EQ(chunk_board_s(p, 2), 3 + 2 * 1);
  const std::vector<BoardCost> ring{head, worker};
  const uint32_t baud = 1000, dim = 1;  // a chunk frame of c positions: (28 + 4c) * 10 ms
  // One chunk of 4 positions: wire 0, stage 1, wire 1, the head, one after another.
  const double w4 = (28 + 16) * 10.0 / baud;
  EXPECT_DOUBLE_EQ(prompt_chunks_s(ring, 4, 4, 4, dim, baud), w4 + 11 + w4 + 7);
  // Two chunks of 2: the second waits for stage 1 (the slowest resource, 7 s per chunk).
  const double w2 = (28 + 8) * 10.0 / baud;
  EXPECT_DOUBLE_EQ(prompt_chunks_s(ring, 4, 2, 4, dim, baud), w2 + 7 + 7 + w2 + 5);
  // A window of one chunk: the second starts when the first is back.
  EXPECT_DOUBLE_EQ(prompt_chunks_s(ring, 4, 2, 1, dim, baud), 2 * (w2 + 7 + w2 + 5));
  // One board: its chunks one after another.
  EXPECT_DOUBLE_EQ(prompt_chunks_s({head}, 5, 2, 4, dim, baud), 2 * 5 + 4);
}

TEST(CostModel, PromptEstimateOfStories15MOnTwoBoards) {
  ModelConfig c;
  ASSERT_TRUE(shape_config("stories15M", &c));
  const ModelSizes m = sizes_from_config(c, WeightType::kQ4, 32, KvType::kF32);
  PlanRequest r;
  r.boards = 2;
  const Plan p = make_plan(m, board16(), r);
  ASSERT_TRUE(p.fits);
  EXPECT_EQ(p.prompt_tokens, kPromptEstimateTokens);
  EXPECT_EQ(p.prompt_chunk_max, 7u);  // what an 8 KB frame holds at dim 288; RAM is plenty
  // The chosen chunk size is the fastest of those that fit.
  std::vector<BoardCost> pos;
  for (const BoardPlan& b : p.boards) pos.push_back(b.prompt_short);
  for (uint32_t b = 1; b <= 7; b++) {
    EXPECT_LE(p.prompt_s - p.prompt_serial_s / 32,
              prompt_chunks_s(pos, 31, b, p.prompt_window, c.dim, r.baud) + 1e-9)
        << b;
  }
  double token = 0;
  for (const BoardPlan& b : p.boards) token += b.gen_short.board_s() + b.gen_short.link_s;
  EXPECT_DOUBLE_EQ(p.prompt_serial_s, 32 * token);
  EXPECT_LT(p.prompt_s, p.prompt_stream_s);
  EXPECT_LT(p.prompt_stream_s, p.prompt_serial_s);
  // No faster than reading each stage's weights once per chunk and computing every position.
  const uint32_t chunks = (31 + p.prompt_chunk - 1) / p.prompt_chunk;
  for (const BoardPlan& b : p.boards) {
    const BoardCost& q = b.prompt_short;
    EXPECT_GT(p.prompt_s, chunks * (q.flash_s + q.sram_s) + 31 * q.compute_s);
  }
  // A board with too little PSRAM for the batch rows takes smaller chunks.
  BoardProfile small = board16();
  uint64_t most = 0;
  for (const BoardPlan& b : p.boards) most = std::max(most, b.psram_used + b.sram_used);
  small.psram_bytes = most + 4096;
  small.sram_bytes = 1024;  // every buffer in PSRAM
  const Plan q = make_plan(m, small, r);
  ASSERT_TRUE(q.fits);
  EXPECT_LT(q.prompt_chunk_max, 7u);
  EXPECT_LE(q.prompt_chunk, q.prompt_chunk_max);
  EXPECT_GE(q.prompt_chunk, 1u);
}
