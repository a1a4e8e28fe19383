// The classifier split as the planner sees it: one choice of slices (Plan::classifier_slices
// is what `split --classifier-slices auto` writes), and a fit check that counts every
// worker's slice in its flash image and its RAM.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>

#include "engine/image.h"
#include "platform/host/mapped_file.h"
#include "test_util.h"
#include "tools/classifier_slices.h"
#include "tools/planner.h"
#include "tools/split.h"

using namespace llmwire;
using llmwire::test::TempDir;

namespace {

BoardProfile board16() {
  BoardProfile b;
  EXPECT_TRUE(find_profile("esp32s3-16mb", &b));
  return b;
}

// A model whose classifier is its own tensor (its rows cost flash wherever they go) and big
// enough next to a CLASSIFY hop that the workers get rows.
struct SmallModel {
  TempDir dir;
  std::string img;
  MappedFile file;
  Image image;
  ModelSizes sizes;
  explicit SmallModel(bool shared = false) {
    const ModelConfig c = llmwire::test::small_config(64, 172, 4, 8, 4, 4096, 32, shared);
    img = llmwire::test::make_image(dir, c, WeightType::kQ4);
    std::string err;
    EXPECT_TRUE(file.open(img, &err)) << err;
    EXPECT_EQ(image.open(file.data(), file.size()), Status::kOk);
    EXPECT_TRUE(sizes_from_image(image, &sizes, &err)) << err;
  }
};

uint64_t file_size(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 ? (uint64_t)st.st_size : 0;
}

}  // namespace

// By hand: stage k's result reaches the head k CLASSIFY hops + its rows + (n - k) CLASS_SLICE
// hops after the head starts its own rows; the choice makes every slice arrive together.
TEST(ClassifierPlan, ChosenRowsArriveTogetherAndRespectTheFlash) {
  const uint32_t dim = 64, baud = 460800, vocab = 4096;
  const double row_s = 5e-6;
  const std::vector<uint32_t> rows =
      choose_classifier_rows(vocab, dim, baud, {row_s, row_s, row_s}, {vocab, vocab, vocab});
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0] + rows[1] + rows[2], vocab);
  const double hop_x = (12 + 12 + 4 * dim) * 10.0 / baud, hop_r = (12 + 28) * 10.0 / baud;
  const double head = rows[0] * row_s;
  for (uint32_t k = 1; k < 3; k++) {
    const double arrive = k * hop_x + rows[k] * row_s + (3 - k) * hop_r;
    EXPECT_NEAR(arrive, head, 2 * row_s) << "stage " << k;
  }
  EXPECT_GT(rows[1], rows[2]);  // stage 2 hears of the activation one hop later
  // A worker whose flash holds only 100 more rows gets 100; the head takes up the rest.
  const std::vector<uint32_t> capped =
      choose_classifier_rows(vocab, dim, baud, {row_s, row_s, row_s}, {vocab, 100, vocab});
  EXPECT_EQ(capped[1], 100u);
  EXPECT_EQ(capped[0] + capped[1] + capped[2], vocab);
  EXPECT_GT(capped[0], rows[0]);
}

// One function: the plan's slices are exactly the rows `split --classifier-slices auto`
// writes into the stage images.
TEST(ClassifierPlan, SplitAutoWritesThePlansSlices) {
  if (access(LLMWIRE_BIN, X_OK) != 0) GTEST_SKIP() << "no CLI binary at " << LLMWIRE_BIN;
  SmallModel m;
  PlanRequest r;
  r.boards = 3;
  r.split_classifier = true;
  r.greedy = true;
  r.baud = 2000000;  // a CLASSIFY hop well under the head's time for every row
  const Plan p = make_plan(m.sizes, board16(), r);
  ASSERT_TRUE(p.fits) << p.advice;
  ASSERT_EQ(p.classifier_slices.size(), 3u);
  EXPECT_GT(p.classifier_slices[1].second, p.classifier_slices[1].first);  // workers get rows
  EXPECT_GT(p.classifier_slices[2].second, p.classifier_slices[2].first);
  const std::string cmd = std::string(LLMWIRE_BIN) + " split " + m.img +
                          " --boards 3 --baud 2000000 --classifier-slices auto -o " +
                          m.dir.file("") + " > " + m.dir.file("split.out") + " 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << llmwire::test::read_file(m.dir.file("split.out"));
  const std::string stem = m.img.substr(m.img.find_last_of('/') + 1);
  const std::string base = m.dir.file(stem.substr(0, stem.rfind('.')));
  for (uint32_t k = 0; k < 3; k++) {
    const std::string path = base + ".stage" + std::to_string(k) + ".img";
    MappedFile f;
    std::string err;
    ASSERT_TRUE(f.open(path, &err)) << err;
    Image st;
    ASSERT_EQ(st.open(f.data(), f.size()), Status::kOk) << path;
    EXPECT_EQ(st.info().cls_row_begin, p.classifier_slices[k].first) << "stage " << k;
    EXPECT_EQ(st.info().cls_row_end, p.classifier_slices[k].second) << "stage " << k;
    EXPECT_EQ(f.size(), p.boards[k].image_bytes) << "stage " << k;
  }
}

// The fit check counts each worker's slice: the planned image sizes are the written ones, and
// a partition that holds a worker's layers but not its slice does not fit.
TEST(ClassifierPlan, FitCheckCountsWorkerSlices) {
  SmallModel m;
  PlanRequest r;
  r.boards = 2;
  r.split_classifier = true;
  r.greedy = true;
  r.classifier_rows = even_classifier_rows(m.sizes.info.config.vocab_size, 2);
  const Plan p = make_plan(m.sizes, board16(), r);
  ASSERT_TRUE(p.fits) << p.advice;
  std::vector<std::pair<uint32_t, uint32_t>> ranges;
  std::vector<std::string> paths;
  for (const BoardPlan& b : p.boards) {
    ranges.push_back({b.layer_begin, b.layer_end});
    paths.push_back(m.dir.file("e" + std::to_string(b.stage) + ".img"));
  }
  std::vector<uint64_t> written;
  std::string err;
  ASSERT_TRUE(
      split_image(m.image, ranges, 0, KvType::kF32, paths, &written, &err, r.classifier_rows))
      << err;
  for (size_t k = 0; k < paths.size(); k++) {
    EXPECT_EQ(file_size(paths[k]), p.boards[k].image_bytes) << "stage " << k;
  }
  // The worker's slice is 2048 rows of 40 bytes; its layers alone are far smaller.
  const uint64_t slice = 2048ull * (m.sizes.classifier / 4096);
  const BoardPlan& w = p.boards[1];
  ASSERT_GT(w.image_bytes, slice);
  // Its RAM holds the slice's logits (Model::layout), 4 bytes a row.
  PlanRequest whole = r;
  whole.split_classifier = false;
  whole.classifier_rows.clear();
  whole.forced = ranges;
  const Plan q = make_plan(m.sizes, board16(), whole);
  EXPECT_EQ(w.psram_used, q.boards[1].psram_used + 4 * 2048);
  // Its image: the slice and one more table entry, up to the 64-byte alignment.
  EXPECT_NEAR((double)(w.image_bytes - q.boards[1].image_bytes), (double)(slice + kTensorEntrySize),
              64.0);
  // A partition one byte short of the worker's image: the split classifier no longer fits.
  BoardProfile tight = board16();
  tight.partition_bytes = w.image_bytes - 1;
  PlanRequest forced = r;
  forced.forced = ranges;
  const Plan t = make_plan(m.sizes, tight, forced);
  EXPECT_FALSE(t.fits);
  EXPECT_FALSE(t.boards[1].fits_flash);
  // Without the split the same layers fit that partition.
  whole.forced = ranges;
  EXPECT_TRUE(make_plan(m.sizes, tight, whole).boards[1].fits_flash);
}

// Sampling with a shared embedding: the head computes every row itself (RingHead::forward), so
// the plan gives the workers' slices no time and the split does not speed it up.
// Sampling runs on the slices (the split sampler): every board keeps its rows and adds its
// exponentials and top-p scan; the estimate sits between greedy and the whole classifier at
// the head.
TEST(ClassifierPlan, SamplingRunsOnTheSlices) {
  SmallModel m(true);
  PlanRequest r;
  r.boards = 2;
  r.split_classifier = true;
  r.greedy = true;
  const Plan greedy = make_plan(m.sizes, board16(), r);
  r.greedy = false;
  const Plan sampled = make_plan(m.sizes, board16(), r);
  r.split_classifier = false;
  const Plan whole = make_plan(m.sizes, board16(), r);
  ASSERT_TRUE(greedy.fits && sampled.fits && whole.fits);
  EXPECT_GT(greedy.boards[1].gen.classifier_rows, 0u);
  for (int k = 0; k < 2; k++) {
    EXPECT_EQ(sampled.boards[k].gen.classifier_rows, greedy.boards[k].gen.classifier_rows);
    EXPECT_GT(sampled.boards[k].gen.sample_exp_s, 0.0);
    EXPECT_GT(sampled.boards[k].gen.sample_top_s, 0.0);
    EXPECT_EQ(greedy.boards[k].gen.sample_exp_s, 0.0);
  }
  EXPECT_EQ(sampled.boards[0].gen.sample_add_s, 0.0);  // the head adds as it computes
  EXPECT_GT(sampled.boards[1].gen.sample_add_s, 0.0);
  EXPECT_LT(greedy.token_s, sampled.token_s);
  // (On this small model at 460,800 baud the rounds' hops cost more than the whole
  // classifier at the head: the planner says so rather than hiding it.)
  EXPECT_GT(whole.token_s, 0.0);
}
