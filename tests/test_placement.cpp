// Weight placement (runtime/placement.h): which tensors go to RAM, copies verified before use,
// and a model reading the copies computes exactly what it computes from flash.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "platform/host/host_clock.h"
#include "platform/host/mapped_file.h"
#include "runtime/placement.h"
#include "runtime/stage.h"
#include "test_util.h"

using namespace llmwire;
using llmwire::test::TempDir;

namespace {

PlacementItem item(TensorKind k, uint32_t layer, uint64_t bytes) {
  PlacementItem it;
  it.kind = k;
  it.layer = layer;
  it.bytes = bytes;
  return it;
}

const RegionSpeeds kS3{25000000, 85000000, 230000000};

}  // namespace

TEST(Placement, HottestFirstIntoTheFastestRegionWithRoom) {
  const PlacementItem items[] = {item(TensorKind::kTokScores, kNoLayer, 50),
                                 item(TensorKind::kTokEmbedding, kNoLayer, 1000),
                                 item(TensorKind::kWq, 0, 100),
                                 item(TensorKind::kWk, 0, 200),
                                 item(TensorKind::kWq, 1, 100),
                                 item(TensorKind::kRmsFinal, kNoLayer, 16)};
  WeightRegion r[6];
  // Only PSRAM: the shared classifier (1008 B aligned) first; then nothing else fits in 92 B.
  PlacementTotals t = choose_placement(items, 6, true, 1100, 0, kS3, r);
  EXPECT_EQ(r[0], WeightRegion::kFlash);  // the tokenizer never moves
  EXPECT_EQ(r[1], WeightRegion::kBig);
  EXPECT_EQ(r[2], WeightRegion::kFlash);
  EXPECT_EQ(r[3], WeightRegion::kFlash);
  EXPECT_EQ(r[4], WeightRegion::kFlash);
  EXPECT_EQ(r[5], WeightRegion::kFlash);
  EXPECT_EQ(t.big_bytes, 1008u);
  EXPECT_EQ(t.tensors, 1u);
  // With 300 B of SRAM: layer 0's first tensor (112 B) to SRAM, its second (208 B) fits
  // neither, layer 1's (112 B) to SRAM.
  t = choose_placement(items, 6, true, 1100, 300, kS3, r);
  EXPECT_EQ(r[1], WeightRegion::kBig);
  EXPECT_EQ(r[2], WeightRegion::kFast);
  EXPECT_EQ(r[3], WeightRegion::kFlash);
  EXPECT_EQ(r[4], WeightRegion::kFast);
  EXPECT_EQ(t.fast_bytes, 224u);
  // Not a classifier (a worker, or a separate classifier): the embedding is a lookup table and
  // stays in flash; the layers take the room in layer order.
  t = choose_placement(items, 6, false, 1100, 0, kS3, r);
  EXPECT_EQ(r[1], WeightRegion::kFlash);
  EXPECT_EQ(r[2], WeightRegion::kBig);
  EXPECT_EQ(r[3], WeightRegion::kBig);
  EXPECT_EQ(r[4], WeightRegion::kBig);
  // RAM no faster than flash: nothing moves.
  const RegionSpeeds slow{85000000, 85000000, 0};
  t = choose_placement(items, 6, true, 1 << 20, 1 << 20, slow, r);
  EXPECT_EQ(t.tensors, 0u);
  for (WeightRegion x : r) EXPECT_EQ(x, WeightRegion::kFlash);
}

TEST(Placement, ACorruptedCopyIsDetected) {
  TempDir dir;
  const std::string img =
      llmwire::test::make_image(dir, llmwire::test::small_config(), WeightType::kQ4);
  MappedFile f;
  std::string err;
  ASSERT_TRUE(f.open(img, &err)) << err;
  Image im;
  ASSERT_EQ(im.open(f.data(), f.size()), Status::kOk);
  const uint32_t n = im.tensor_count();
  std::vector<PlacementItem> items(n);
  placement_items(im, items.data());
  std::vector<WeightRegion> region(n);
  const PlacementTotals t = choose_placement(items.data(), n, classifier_is_embedding(im.info()),
                                             1 << 24, 0, kS3, region.data());
  ASSERT_GT(t.tensors, 2u);
  std::vector<uint8_t> ram(t.big_bytes + 64);
  Arena fast, big(MemoryRegion{ram.data(), ram.size()});
  std::vector<const uint8_t*> at(n);
  ASSERT_EQ(copy_placed(im, region.data(), &fast, &big, at.data()), Status::kOk);
  uint32_t bad = 999;
  EXPECT_EQ(verify_placed(im, at.data(), &bad), Status::kOk);
  // One flipped bit in the last placed tensor's copy.
  uint32_t last = 0;
  for (uint32_t i = 0; i < n; i++) {
    if (at[i]) last = i;
  }
  const_cast<uint8_t*>(at[last])[im.tensor(last).bytes() / 2] ^= 0x08;
  EXPECT_EQ(verify_placed(im, at.data(), &bad), Status::kPlacementCorrupt);
  EXPECT_EQ(bad, last);
  // A copy that ran out of room is refused, not half made.
  std::vector<uint8_t> small(64);
  Arena tiny(MemoryRegion{small.data(), small.size()});
  EXPECT_EQ(copy_placed(im, region.data(), &fast, &tiny, at.data()), Status::kArenaTooSmall);
}

namespace {

// Boots a whole-model stage with `spare` bytes of PSRAM beyond its needs and returns the
// logits of a few positions, computed through the model the stage set up.
std::vector<float> stage_logits(const std::vector<uint8_t>& image, bool place, size_t spare,
                                PlacementTotals* placed, bool* reads_copies) {
  Image probe;
  EXPECT_EQ(probe.open(image.data(), image.size()), Status::kOk);
  StageOptions so;
  so.place_weights = place;
  const MemoryNeeds need = Stage::memory_needs(probe.info(), so);
  std::vector<uint8_t> fast(need.fast + 64 + spare / 8), big(need.big + 64 + spare);
  HostClock clock;
  SerialExecutor exec;
  Platform p;
  p.image = image.data();
  p.image_len = image.size();
  p.clock = &clock;
  p.executor = &exec;
  p.fast = MemoryRegion{fast.data(), fast.size()};
  p.big = MemoryRegion{big.data(), big.size()};
  p.speeds = kS3;
  char msg[400];
  Stage s;
  EXPECT_EQ(s.boot(p, so, msg, sizeof msg), Status::kOk) << msg;
  *placed = s.placement();
  *reads_copies = false;
  for (uint32_t i = 0; i < s.image().tensor_count(); i++) {
    const uint8_t* d = s.image().tensor(i).data;
    if ((d >= big.data() && d < big.data() + big.size()) ||
        (d >= fast.data() && d < fast.data() + fast.size())) {
      *reads_copies = true;
    }
  }
  Model& m = s.model();
  const ModelConfig& c = m.config();
  std::vector<float> out, x(c.dim), logits(c.vocab_size);
  const int32_t toks[] = {1, 57, 200, 3, 99, 17};
  for (uint32_t pos = 0; pos < 6; pos++) {
    EXPECT_EQ(m.embed(toks[pos], x.data()), Status::kOk);
    EXPECT_EQ(m.run_layers(0, c.n_layers, pos, x.data()), Status::kOk);
    EXPECT_EQ(m.head(x.data(), 0, c.vocab_size, logits.data()), Status::kOk);
    out.insert(out.end(), logits.begin(), logits.end());
  }
  return out;
}

}  // namespace

TEST(Placement, SameLogitsWithAndWithoutPlacement) {
  TempDir dir;
  for (bool shared : {true, false}) {
    const ModelConfig c = llmwire::test::small_config(64, 172, 3, 8, 4, 320, 32, shared);
    const std::string img = llmwire::test::make_image(dir, c, WeightType::kQ4, 32, shared ? 3 : 4,
                                                      KvType::kF32, shared ? "s" : "p");
    MappedFile f;
    std::string err;
    ASSERT_TRUE(f.open(img, &err)) << err;
    const std::vector<uint8_t> bytes(f.data(), f.data() + f.size());
    PlacementTotals none, all, some;
    bool copies_none = true, copies_all = false, copies_some = false;
    const auto a = stage_logits(bytes, false, 1 << 20, &none, &copies_none);
    const auto b = stage_logits(bytes, true, 1 << 20, &all, &copies_all);
    const auto p = stage_logits(bytes, true, 24 * 1024, &some, &copies_some);
    EXPECT_EQ(none.tensors, 0u);
    EXPECT_FALSE(copies_none);
    EXPECT_GT(all.tensors, some.tensors);  // everything hot fits in 1 MB, not in 24 KB
    EXPECT_GT(some.tensors, 0u);
    EXPECT_TRUE(copies_all);
    EXPECT_TRUE(copies_some);
    ASSERT_EQ(a.size(), b.size());
    EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * 4), 0) << "shared " << shared;
    EXPECT_EQ(std::memcmp(a.data(), p.data(), a.size() * 4), 0) << "shared " << shared;
  }
}
