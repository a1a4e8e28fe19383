// On-flash image layout: the bytes a converter writes and a board maps. See docs/FORMAT.md.
// Everything is little-endian; the reader never casts these structs onto mapped bytes
// (alignment and endianness safety) but decodes field by field.
#pragma once

#include <stdint.h>

namespace llmwire {

constexpr char kImageMagic[8] = {'L', 'L', 'M', 'W', 'I', 'M', 'G', '\0'};
constexpr uint32_t kImageVersion = 1;
constexpr uint32_t kHeaderSize = 256;
constexpr uint32_t kTensorEntrySize = 40;
constexpr uint32_t kTensorAlign = 64;  // one cache line: rows stream with aligned loads
constexpr uint32_t kMaxLayers = 64;
constexpr uint32_t kNoLayer = 0xFFFF;

// Header field offsets (bytes from the start of the image).
namespace hdr {
constexpr uint32_t kMagic = 0;          // char[8]
constexpr uint32_t kVersion = 8;        // u32
constexpr uint32_t kHeaderSize = 12;    // u32
constexpr uint32_t kFileSize = 16;      // u64
constexpr uint32_t kModelId = 24;       // u64
constexpr uint32_t kPayloadCrc = 32;    // u32 CRC-32C of bytes [header_size, file_size)
constexpr uint32_t kTensorCount = 36;   // u32
constexpr uint32_t kTableOffset = 40;   // u32
constexpr uint32_t kFlags = 44;         // u32, ImageFlags
constexpr uint32_t kDim = 48;           // u32 x 7: dim, hidden, layers, heads, kv_heads, vocab, seq
constexpr uint32_t kWeightType = 76;    // u32 WeightType of the matrices
constexpr uint32_t kGroupSize = 80;     // u32
constexpr uint32_t kKvType = 84;        // u32 KvType default for this image
constexpr uint32_t kStageIndex = 88;    // u32
constexpr uint32_t kStageCount = 92;    // u32
constexpr uint32_t kLayerBegin = 96;    // u32
constexpr uint32_t kLayerEnd = 100;     // u32
constexpr uint32_t kNormEps = 104;      // f32
constexpr uint32_t kRopeTheta = 108;    // f32
constexpr uint32_t kTokMaxLen = 112;    // u32 longest token piece in bytes
constexpr uint32_t kBosId = 116;        // u32
constexpr uint32_t kEosId = 120;        // u32
constexpr uint32_t kModelName = 124;    // char[32], NUL padded
constexpr uint32_t kQuantMethod = 156;  // u32 QuantMethod bits (0: plain, or an older image)
constexpr uint32_t kCalibTokens = 160;  // u32 calibration tokens (0: not calibrated)
constexpr uint32_t kCalibCrc = 164;     // u32 CRC-32C of the calibration text's bytes
constexpr uint32_t kClsRowBegin = 168;  // u32 first classifier row held (kFlagClassifierSlice)
constexpr uint32_t kClsRowEnd = 172;    // u32 one past the last row held (kFlagClassifierSlice)
// [176, 248) reserved, zero.
constexpr uint32_t kSelftestDigest = 248;  // u32 /selftest story digest (head images; 0: none)
constexpr uint32_t kHeaderCrc = 252;       // u32 CRC-32C of bytes [0, 252)
}  // namespace hdr

enum ImageFlags : uint32_t {
  kFlagSharedClassifier = 1u << 0,  // the classifier is the token embedding
  kFlagHasTokenizer = 1u << 1,
  kFlagHasEmbedding = 1u << 2,
  kFlagHasClassifier = 1u << 3,  // final norm + classifier rows
  // The classifier is split across the ring: this stage computes rows [cls_row_begin,
  // cls_row_end) (docs/PROTOCOL.md "Classifier split"). The head holds the first slice.
  kFlagClassifierSlice = 1u << 4,
};
constexpr uint32_t kKnownImageFlags = 0x1F;

// How the converter chose the quantized weights (header field quant_method). Informational
// except kQuantMixed, which lets a quantized image hold both Q4 and Q8 matrices.
enum QuantMethod : uint32_t {
  kQuantImportance = 1u << 0,  // group scales minimise calibration-weighted squared error
  kQuantErrorComp = 1u << 1,   // GPTQ-style error compensation within each row's groups
  kQuantMixed = 1u << 2,       // matrices are Q4 or Q8 per tensor (chosen under a budget)
};

// Element types of tensors. Q8/Q4 are group-quantized rows (see docs/FORMAT.md).
enum class DType : uint8_t { kF32 = 0, kQ8 = 1, kQ4 = 2, kU8 = 3, kU32 = 4, kU16 = 5 };

// Weight quantization of an image's matrices.
enum class WeightType : uint32_t { kF32 = 0, kQ8 = 1, kQ4 = 2 };

// KV cache element type.
enum class KvType : uint32_t { kF32 = 0, kF16 = 1, kI8 = 2 };  // kI8: a scale per head vector

// What a tensor is. Per-layer kinds carry a layer index; the others carry kNoLayer.
enum class TensorKind : uint16_t {
  kTokEmbedding = 1,  // [vocab, dim]
  kRmsAtt = 2,        // [dim] f32
  kWq = 3,            // [dim, dim]
  kWk = 4,            // [kv_dim, dim]
  kWv = 5,            // [kv_dim, dim]
  kWo = 6,            // [dim, dim]
  kRmsFfn = 7,        // [dim] f32
  kW1 = 8,            // [hidden, dim]
  kW2 = 9,            // [dim, hidden]
  kW3 = 10,           // [hidden, dim]
  kRmsFinal = 11,     // [dim] f32
  kClassifier = 12,   // [vocab, dim] (absent when shared with the embedding)
  kTokScores = 20,    // [vocab] f32 merge scores
  kTokOffsets = 21,   // [vocab + 1] u32 offsets into kTokBytes
  kTokBytes = 22,     // [total] u8 concatenated pieces
  kTokSorted = 23,    // [vocab] token ids sorted by piece bytes (for lookup): u16 if vocab
                      // <= 65536, else u32
};

// Tensor table entry field offsets (bytes from the start of the entry).
namespace ent {
constexpr uint32_t kKind = 0;        // u16 TensorKind
constexpr uint32_t kLayer = 2;       // u16 layer or kNoLayer
constexpr uint32_t kDType = 4;       // u8 DType, then 3 zero bytes
constexpr uint32_t kRows = 8;        // u32
constexpr uint32_t kCols = 12;       // u32 (logical columns)
constexpr uint32_t kRowStride = 16;  // u32 bytes per row
constexpr uint32_t kReserved = 20;   // u32 zero
constexpr uint32_t kOffset = 24;     // u64 from the start of the image, kTensorAlign aligned
constexpr uint32_t kSize = 32;       // u64 bytes = rows * row_stride
}  // namespace ent

// Bytes of one stored row of `cols` logical columns.
// Q8/Q4 rows: ceil(cols/G) fp16 scales (padded to 4 bytes), then ceil(cols/G) groups of
// G int8 values (Q8) or G/2 bytes of nibbles (Q4). Columns past `cols` are zero.
inline uint32_t row_stride_bytes(DType t, uint32_t cols, uint32_t group) {
  const uint32_t groups = (cols + group - 1) / group;
  const uint32_t scale_bytes = (groups * 2u + 3u) & ~3u;
  switch (t) {
    case DType::kF32:
    case DType::kU32:
      return cols * 4u;
    case DType::kQ8:
      return scale_bytes + groups * group;
    case DType::kQ4:
      return scale_bytes + groups * (group / 2u);
    case DType::kU8:
      return cols;
    case DType::kU16:
      return cols * 2u;
  }
  return 0;
}

}  // namespace llmwire
