// The image reader refuses every kind of damage with the right error and never crashes.
#include <gtest/gtest.h>

#include <cstring>

#include "engine/crc32c.h"
#include "engine/image.h"
#include "test_util.h"

using namespace llmwire;
using llmwire::test::TempDir;

namespace {

struct Fixture {
  TempDir dir;
  std::vector<uint8_t> bytes;
  Fixture() {
    const ModelConfig c = llmwire::test::small_config(64, 100, 2, 4, 2, 300, 16, false);
    bytes = llmwire::test::read_bytes(llmwire::test::make_image(dir, c, WeightType::kQ4));
  }
};

// Opens a copy in 4-byte aligned memory, as a mapping would be.
Status open_copy(const std::vector<uint8_t>& b, bool verify = true, Image* out = nullptr) {
  std::vector<uint32_t> buf(b.size() / 4 + 1);
  if (!b.empty()) std::memcpy(buf.data(), b.data(), b.size());
  Image im;
  const Status s = im.open(reinterpret_cast<const uint8_t*>(buf.data()), b.size(), verify);
  if (out) *out = im;
  return s;
}

void fix_header_crc(std::vector<uint8_t>& b) {
  store_u32(&b[hdr::kHeaderCrc], crc32c(b.data(), hdr::kHeaderCrc));
}
void fix_payload_crc(std::vector<uint8_t>& b) {
  store_u32(&b[hdr::kPayloadCrc], crc32c(b.data() + kHeaderSize, b.size() - kHeaderSize));
  fix_header_crc(b);
}

}  // namespace

TEST(ImageReader, AcceptsAGoodImage) {
  Fixture f;
  EXPECT_EQ(open_copy(f.bytes), Status::kOk);
}

TEST(ImageReader, RefusesTruncatedImages) {
  Fixture f;
  for (size_t len : {size_t(0), size_t(10), size_t(255), size_t(256), size_t(300),
                     f.bytes.size() / 2, f.bytes.size() - 1}) {
    std::vector<uint8_t> b(f.bytes.begin(), f.bytes.begin() + len);
    const Status s = open_copy(b);
    EXPECT_TRUE(s == Status::kImageTooSmall || s == Status::kTruncated)
        << len << " -> " << status_message(s);
  }
  std::vector<uint8_t> longer = f.bytes;
  longer.push_back(0);
  EXPECT_EQ(open_copy(longer), Status::kSizeMismatch);
}

TEST(ImageReader, DetectsBitFlips) {
  Fixture f;
  // In the payload: every 997th byte position, one bit each.
  for (size_t pos = kHeaderSize; pos < f.bytes.size(); pos += 997) {
    std::vector<uint8_t> b = f.bytes;
    b[pos] ^= (uint8_t)(1u << (pos % 8));
    ASSERT_EQ(open_copy(b), Status::kPayloadCorrupt) << pos;
  }
  // In the header (past the magic): the header CRC catches it.
  for (size_t pos = 8; pos < kHeaderSize; pos += 7) {
    std::vector<uint8_t> b = f.bytes;
    b[pos] ^= 0x10;
    const Status s = open_copy(b);
    ASSERT_TRUE(s == Status::kHeaderCorrupt || s == Status::kBadVersion ||
                s == Status::kBadHeaderSize)
        << pos;
  }
  std::vector<uint8_t> b = f.bytes;
  b[0] = 'X';
  EXPECT_EQ(open_copy(b), Status::kBadMagic);
}

TEST(ImageReader, RefusesOtherVersions) {
  Fixture f;
  std::vector<uint8_t> b = f.bytes;
  store_u32(&b[hdr::kVersion], 2);
  fix_header_crc(b);
  EXPECT_EQ(open_copy(b), Status::kBadVersion);
}

TEST(ImageReader, RefusesAbsurdConfigs) {
  Fixture f;
  struct Edit {
    uint32_t off, value;
  } edits[] = {
      {hdr::kDim, 0},        {hdr::kDim, 1u << 30},     {hdr::kDim + 4, 0},   // dim, hidden
      {hdr::kDim + 8, 0},    {hdr::kDim + 8, 1000},     {hdr::kDim + 12, 3},  // layers, heads
      {hdr::kDim + 16, 3},   {hdr::kDim + 20, 0},       {hdr::kDim + 24, 0},  // kv, vocab, seq
      {hdr::kWeightType, 9}, {hdr::kGroupSize, 12},     {hdr::kGroupSize, 0},
      {hdr::kKvType, 5},     {hdr::kStageIndex, 3},     {hdr::kLayerEnd, 99},
      {hdr::kLayerBegin, 2}, {hdr::kTokMaxLen, 100000}, {hdr::kBosId, 1u << 30},
  };
  for (const Edit& e : edits) {
    std::vector<uint8_t> b = f.bytes;
    store_u32(&b[e.off], e.value);
    fix_header_crc(b);
    const Status s = open_copy(b);
    EXPECT_NE(s, Status::kOk) << "offset " << e.off << " value " << e.value;
    EXPECT_TRUE(s == Status::kBadConfig || s == Status::kBadTensorShape ||
                s == Status::kBadTensorTable || s == Status::kMissingTensor)
        << "offset " << e.off << " -> " << status_message(s);
  }
}

TEST(ImageReader, RefusesBadTensorTables) {
  Fixture f;
  const uint32_t table = load_u32(&f.bytes[hdr::kTableOffset]);
  const uint32_t count = load_u32(&f.bytes[hdr::kTensorCount]);
  // Offset far outside the file.
  {
    std::vector<uint8_t> b = f.bytes;
    store_u64(&b[table + ent::kOffset], (uint64_t)1 << 40);
    fix_payload_crc(b);
    EXPECT_EQ(open_copy(b), Status::kBadTensorTable);
  }
  // Misaligned offset.
  {
    std::vector<uint8_t> b = f.bytes;
    store_u64(&b[table + ent::kOffset], load_u64(&b[table + ent::kOffset]) + 4);
    fix_payload_crc(b);
    EXPECT_EQ(open_copy(b), Status::kBadTensorTable);
  }
  // Rows that do not match the config.
  {
    std::vector<uint8_t> b = f.bytes;
    store_u32(&b[table + ent::kRows], load_u32(&b[table + ent::kRows]) + 1);
    fix_payload_crc(b);
    EXPECT_NE(open_copy(b), Status::kOk);
  }
  // Unknown kind and duplicated tensor.
  {
    std::vector<uint8_t> b = f.bytes;
    store_u16(&b[table + ent::kKind], 99);
    fix_payload_crc(b);
    EXPECT_EQ(open_copy(b), Status::kBadTensorTable);
  }
  // One tensor fewer than the header promises: missing.
  {
    std::vector<uint8_t> b = f.bytes;
    store_u32(&b[hdr::kTensorCount], count - 1);
    fix_payload_crc(b);
    EXPECT_EQ(open_copy(b), Status::kMissingTensor);
  }
  // Absurd tensor count.
  {
    std::vector<uint8_t> b = f.bytes;
    store_u32(&b[hdr::kTensorCount], 0xFFFFFFFFu);
    fix_payload_crc(b);
    EXPECT_NE(open_copy(b), Status::kOk);
  }
}

TEST(ImageReader, RandomCorruptionNeverCrashes) {
  Fixture f;
  uint32_t state = 12345;
  auto rnd = [&] { return state = state * 1103515245u + 12345u; };
  for (int i = 0; i < 300; i++) {
    std::vector<uint8_t> b = f.bytes;
    const int flips = 1 + rnd() % 8;
    for (int k = 0; k < flips; k++) b[rnd() % b.size()] ^= (uint8_t)(1u << (rnd() % 8));
    fix_payload_crc(b);  // get past the checksums to the structural checks
    Image im;
    open_copy(b, true, &im);  // any status is fine; a crash or sanitizer report is not
  }
}

TEST(ImageReader, MessagesSayWhatToDo) {
  for (Status s :
       {Status::kTruncated, Status::kPayloadCorrupt, Status::kBadMagic, Status::kBadVersion}) {
    EXPECT_GT(std::strlen(status_message(s)), 10u);
    EXPECT_GT(std::strlen(status_hint(s)), 10u);
  }
}
