// The planner: the fits it promises are real (image sizes equal the written stage images),
// and the headline plans for the stories42M / stories110M shapes.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include "platform/host/mapped_file.h"
#include "test_util.h"
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
