// ImageWriter: header, table, alignment and checksums, checked by parsing the bytes here
// from the FORMAT.md description (with a bitwise CRC-32C written in this file).
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "engine/image_header.h"
#include "test_util.h"
#include "tools/image_writer.h"
#include "tools/quantize.h"

using namespace llmwire;
using llmwire::test::TempDir;

namespace {

// Bitwise CRC-32C (Castagnoli, reflected polynomial 0x82F63B78, init/xorout 0xFFFFFFFF).
uint32_t crc32c_bitwise(const uint8_t* p, size_t n) {
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; i++) {
    c ^= p[i];
    for (int k = 0; k < 8; k++) c = (c & 1u) ? (c >> 1) ^ 0x82F63B78u : (c >> 1);
  }
  return ~c;
}

ImageInfo test_info() {
  ImageInfo info;
  info.config = llmwire::test::small_config(16, 24, 2, 2, 1, 300, 8, true);
  info.weight_type = WeightType::kQ4;
  info.group_size = 8;
  info.kv_type = KvType::kF16;
  info.stage_index = 0;
  info.stage_count = 1;
  info.layer_begin = 0;
  info.layer_end = 2;
  info.flags = kFlagHasTokenizer | kFlagHasEmbedding;
  info.tok_max_len = 9;
  std::strcpy(info.model_name, "writer-test");
  return info;
}

struct Added {
  uint16_t kind, layer;
  uint8_t dtype;
  uint32_t rows, cols, stride;
  std::vector<uint8_t> bytes;
};

}  // namespace

TEST(ImageWriter, CrcReferenceVector) {
  const char* s = "123456789";
  EXPECT_EQ(crc32c_bitwise(reinterpret_cast<const uint8_t*>(s), 9), 0xE3069283u);
}

TEST(ImageWriter, LayoutHeaderTableAndChecksums) {
  ImageWriter w(test_info());
  std::vector<Added> added;
  // Odd sizes so alignment gaps appear.
  std::vector<uint8_t> u8(5);
  for (int i = 0; i < 5; i++) u8[i] = (uint8_t)(0xA0 + i);
  w.add_raw(TensorKind::kTokBytes, kNoLayer, DType::kU8, 1, 5, 5, u8.data());
  added.push_back({22, 0xFFFF, 3, 1, 5, 5, u8});
  std::vector<uint8_t> f3(12);
  for (int i = 0; i < 12; i++) f3[i] = (uint8_t)(i + 1);
  w.add_raw(TensorKind::kRmsAtt, 1, DType::kF32, 1, 3, 12, f3.data());
  added.push_back({2, 1, 0, 1, 3, 12, f3});
  // A quantized matrix: 3 rows of 20 columns, group 8.
  std::vector<float> m(60);
  for (int i = 0; i < 60; i++) m[i] = (float)((i * 37) % 23) - 11.0f;
  w.add_matrix(TensorKind::kW2, 0, DType::kQ4, 3, 20, 8, m.data());
  const uint32_t qstride = 8 + 3 * 4;  // 3 groups: 6 scale bytes padded to 8, 3 x 4 nibble bytes
  std::vector<uint8_t> qbytes(3 * qstride);
  for (int r = 0; r < 3; r++)
    encode_row(m.data() + 20 * r, 20, DType::kQ4, 8, qbytes.data() + r * qstride);
  added.push_back({9, 0, 2, 3, 20, qstride, qbytes});

  const std::vector<uint8_t> img = w.finish();
  const uint8_t* p = img.data();
  ASSERT_GE(img.size(), 256u);
  EXPECT_EQ(0, std::memcmp(p, "LLMWIMG\0", 8));
  EXPECT_EQ(load_u32(p + 8), 1u);
  EXPECT_EQ(load_u32(p + 12), 256u);
  EXPECT_EQ(load_u64(p + 16), img.size());
  EXPECT_NE(load_u64(p + 24), 0u);
  EXPECT_EQ(load_u32(p + 32), crc32c_bitwise(p + 256, img.size() - 256));
  EXPECT_EQ(load_u32(p + 36), 3u);
  EXPECT_EQ(load_u32(p + 40), 256u);
  EXPECT_EQ(load_u32(p + 44),
            (uint32_t)(kFlagHasTokenizer | kFlagHasEmbedding | kFlagSharedClassifier));
  const uint32_t dims[7] = {16, 24, 2, 2, 1, 300, 8};
  for (int i = 0; i < 7; i++) EXPECT_EQ(load_u32(p + 48 + 4 * i), dims[i]);
  EXPECT_EQ(load_u32(p + 76), 2u);  // Q4
  EXPECT_EQ(load_u32(p + 80), 8u);
  EXPECT_EQ(load_u32(p + 84), 1u);  // fp16 KV
  EXPECT_EQ(load_u32(p + 100), 2u);
  EXPECT_EQ(load_u32(p + 112), 9u);
  EXPECT_EQ(0, std::strcmp(reinterpret_cast<const char*>(p + 124), "writer-test"));
  for (int i = 156; i < 252; i++) EXPECT_EQ(p[i], 0) << "reserved byte " << i;
  EXPECT_EQ(load_u32(p + 252), crc32c_bitwise(p, 252));

  // Table and data.
  uint64_t prev_end = 256 + 3 * 40;
  std::vector<bool> covered(img.size(), false);
  for (size_t i = 0; i < 256 + 3 * 40; i++) covered[i] = true;
  for (int i = 0; i < 3; i++) {
    const uint8_t* e = p + 256 + 40 * i;
    const Added& a = added[i];
    EXPECT_EQ(load_u16(e + 0), a.kind);
    EXPECT_EQ(load_u16(e + 2), a.layer);
    EXPECT_EQ(e[4], a.dtype);
    EXPECT_EQ(e[5] | e[6] | e[7], 0);
    EXPECT_EQ(load_u32(e + 8), a.rows);
    EXPECT_EQ(load_u32(e + 12), a.cols);
    EXPECT_EQ(load_u32(e + 16), a.stride);
    EXPECT_EQ(load_u32(e + 20), 0u);
    const uint64_t off = load_u64(e + 24), size = load_u64(e + 32);
    EXPECT_EQ(off % 64, 0u);
    EXPECT_GE(off, prev_end);
    EXPECT_LT(off - prev_end, 64u) << "no more padding than alignment needs";
    EXPECT_EQ(size, (uint64_t)a.rows * a.stride);
    ASSERT_LE(off + size, img.size());
    EXPECT_EQ(0, std::memcmp(p + off, a.bytes.data(), size)) << "tensor " << i;
    for (uint64_t b = off; b < off + size; b++) covered[b] = true;
    prev_end = off + size;
  }
  EXPECT_EQ(prev_end, img.size()) << "the file ends where the last tensor ends";
  for (size_t b = 0; b < img.size(); b++) {
    if (!covered[b]) {
      EXPECT_EQ(p[b], 0) << "gap byte " << b;
    }
  }

  // The engine's decoder agrees.
  ImageInfo back;
  ASSERT_EQ(decode_header(img.data(), img.size(), &back), Status::kOk);
  EXPECT_EQ(back.file_size, img.size());
  EXPECT_EQ(back.tensor_count, 3u);
  EXPECT_EQ(back.config.vocab_size, 300u);
  EXPECT_TRUE(back.config.shared_classifier);
}

TEST(ImageWriter, ModelIdCoversWeightsNotStages) {
  auto build = [](ImageInfo info, float tweak) {
    ImageWriter w(info);
    std::vector<float> m(64, 0.5f);
    m[7] += tweak;
    w.add_matrix(TensorKind::kWq, 0, DType::kQ8, 4, 16, 8, m.data());
    w.finish();
    return w.info().model_id;
  };
  const ImageInfo base = test_info();
  const uint64_t id = build(base, 0);
  EXPECT_EQ(id, build(base, 0));
  ImageInfo staged = base;
  staged.stage_index = 1;
  staged.stage_count = 2;
  staged.layer_begin = 1;
  staged.flags = 0;
  staged.config.seq_len = 4;
  staged.kv_type = KvType::kF32;
  std::strcpy(staged.model_name, "other");
  EXPECT_EQ(id, build(staged, 0)) << "stage fields, seq, kv type and name are not part of the id";
  EXPECT_NE(id, build(base, 1.0f)) << "weights are";
  ImageInfo q = base;
  q.group_size = 16;
  EXPECT_NE(id, build(q, 0));
  ImageInfo given = base;
  given.model_id = 0x1234;
  EXPECT_EQ(build(given, 0), 0x1234u) << "a given id is kept (stage images copy the model's)";
}

TEST(ImageWriter, WriteIsAtomicAndReportsErrors) {
  TempDir dir;
  ImageWriter w(test_info());
  std::vector<float> m(32, 1.0f);
  w.add_matrix(TensorKind::kRmsAtt, 0, DType::kF32, 1, 32, 0, m.data());
  std::string err;
  const std::string path = dir.file("out.img");
  ASSERT_TRUE(w.write(path, &err)) << err;
  const std::vector<uint8_t> on_disk = llmwire::test::read_bytes(path);
  EXPECT_EQ(on_disk, w.finish());
  EXPECT_NE(0, access((path + ".tmp").c_str(), F_OK)) << "temporary file left behind";
  EXPECT_FALSE(w.write(dir.file("no/such/dir/out.img"), &err));
  EXPECT_NE(err.find("cannot create"), std::string::npos) << err;
  if (access("/dev/full", W_OK) == 0) {
    // /dev/full: rename onto it fails or the write fails; either way an error, never a crash.
    EXPECT_FALSE(w.write("/dev/full/x", &err));
  }
}
