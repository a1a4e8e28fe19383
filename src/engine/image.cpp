#include "engine/image.h"

#include <string.h>

#include "engine/crc32c.h"

namespace llmwire {
namespace {

constexpr uint32_t kMaxTensors = 4096;
constexpr uint32_t kMaxDim = 65536;
constexpr uint32_t kMaxBig = 1u << 20;  // hidden, vocab, seq

bool is_layer_kind(TensorKind k) {
  switch (k) {
    case TensorKind::kRmsAtt:
    case TensorKind::kWq:
    case TensorKind::kWk:
    case TensorKind::kWv:
    case TensorKind::kWo:
    case TensorKind::kRmsFfn:
    case TensorKind::kW1:
    case TensorKind::kW2:
    case TensorKind::kW3:
      return true;
    default:
      return false;
  }
}

bool known_kind(uint16_t k) {
  return (k >= (uint16_t)TensorKind::kTokEmbedding && k <= (uint16_t)TensorKind::kClassifier) ||
         (k >= (uint16_t)TensorKind::kTokScores && k <= (uint16_t)TensorKind::kTokSorted);
}

DType matrix_dtype(WeightType w) {
  switch (w) {
    case WeightType::kQ8:
      return DType::kQ8;
    case WeightType::kQ4:
      return DType::kQ4;
    default:
      return DType::kF32;
  }
}

const TensorKind kLayerKinds[] = {TensorKind::kRmsAtt, TensorKind::kWq, TensorKind::kWk,
                                  TensorKind::kWv,     TensorKind::kWo, TensorKind::kRmsFfn,
                                  TensorKind::kW1,     TensorKind::kW2, TensorKind::kW3};
const TensorKind kTokenizerKinds[] = {TensorKind::kTokScores, TensorKind::kTokOffsets,
                                      TensorKind::kTokBytes, TensorKind::kTokSorted};

// Compares two tokenizer pieces bytewise, a prefix first; equal pieces by id.
int compare_piece(const uint8_t* a, uint32_t alen, uint32_t aid, const uint8_t* b, uint32_t blen,
                  uint32_t bid) {
  const uint32_t n = alen < blen ? alen : blen;
  const int c = n ? memcmp(a, b, n) : 0;
  if (c != 0) return c;
  if (alen != blen) return alen < blen ? -1 : 1;
  if (aid != bid) return aid < bid ? -1 : 1;
  return 0;
}

}  // namespace

Status Image::open(const uint8_t* data, size_t len, bool verify_payload) {
  data_ = nullptr;
  size_ = 0;
  failed_tensor_ = -1;
  relocated_ = nullptr;
  if (data == nullptr || len < kHeaderSize) return Status::kImageTooSmall;
  if (((uintptr_t)data & 3u) != 0) return Status::kBadArgument;
  Status s = decode_header(data, len, &info_);
  if (s != Status::kOk) return s;
  if (info_.file_size > (uint64_t)len) return Status::kTruncated;
  if (info_.file_size < (uint64_t)len) return Status::kSizeMismatch;
  data_ = data;
  size_ = len;
  if (verify_payload && crc32c(data + kHeaderSize, len - kHeaderSize) != info_.payload_crc) {
    data_ = nullptr;
    return Status::kPayloadCorrupt;
  }
  if ((s = check_config()) != Status::kOk || (s = check_table()) != Status::kOk ||
      (s = check_required()) != Status::kOk || (s = check_tokenizer()) != Status::kOk) {
    data_ = nullptr;
    return s;
  }
  return Status::kOk;
}

Status Image::check_config() const {
  const ModelConfig& c = info_.config;
  if (c.dim == 0 || c.dim > kMaxDim || c.hidden_dim == 0 || c.hidden_dim > kMaxBig ||
      c.n_layers == 0 || c.n_layers > kMaxLayers || c.n_heads == 0 || c.n_heads > c.dim ||
      c.n_kv_heads == 0 || c.n_kv_heads > c.n_heads || c.vocab_size == 0 ||
      c.vocab_size > kMaxBig || c.seq_len == 0 || c.seq_len > kMaxBig) {
    return Status::kBadConfig;
  }
  if (c.dim % c.n_heads != 0 || (c.dim / c.n_heads) % 2 != 0 || c.n_heads % c.n_kv_heads != 0) {
    return Status::kBadConfig;
  }
  if ((uint32_t)info_.weight_type > (uint32_t)WeightType::kQ4 ||
      (uint32_t)info_.kv_type > (uint32_t)KvType::kI8) {
    return Status::kBadConfig;
  }
  if (info_.weight_type == WeightType::kF32) {
    if (info_.group_size != 0) return Status::kBadConfig;
  } else if (info_.group_size < 8 || info_.group_size > 256 || info_.group_size % 8 != 0) {
    return Status::kBadConfig;
  }
  if (info_.stage_count == 0 || info_.stage_count > kMaxLayers + 1 ||
      info_.stage_index >= info_.stage_count || info_.layer_begin > info_.layer_end ||
      info_.layer_end > c.n_layers) {
    return Status::kBadConfig;
  }
  // Stage 0 owns the tokenizer, embedding and classifier; a whole model is stage 0 of 1 and
  // holds every layer; a split model's head runs the last layers.
  if (info_.flags & ~kKnownImageFlags) return Status::kBadConfig;
  // A classifier slice: the head holds the first rows (and the final norm), a worker any
  // non-empty range; an unsplit image records no range.
  if (info_.has(kFlagClassifierSlice)) {
    if (info_.stage_count < 2 || info_.cls_row_begin >= info_.cls_row_end ||
        info_.cls_row_end > c.vocab_size ||
        (info_.stage_index == 0) != info_.has(kFlagHasClassifier) ||
        (info_.stage_index == 0 && info_.cls_row_begin != 0)) {
      return Status::kBadConfig;
    }
  } else if (info_.cls_row_begin != 0 || info_.cls_row_end != 0) {
    return Status::kBadConfig;
  }
  if (info_.stage_count == 1 && (info_.layer_begin != 0 || info_.layer_end != c.n_layers)) {
    return Status::kBadConfig;
  }
  if (info_.stage_index == 0 && info_.layer_end != c.n_layers) {
    return Status::kBadConfig;
  }
  if (!(info_.norm_eps > 0.0f && info_.norm_eps < 1.0f) ||
      !(info_.rope_theta > 1.0f && info_.rope_theta < 1e12f)) {
    return Status::kBadConfig;
  }
  if (info_.has(kFlagHasTokenizer) &&
      (info_.tok_max_len == 0 || info_.tok_max_len > Tokenizer::kMaxTokenLen)) {
    return Status::kBadConfig;
  }
  if (info_.bos_id >= c.vocab_size || info_.eos_id >= c.vocab_size) return Status::kBadConfig;
  if (info_.tensor_count == 0 || info_.tensor_count > kMaxTensors) return Status::kBadTensorTable;
  return Status::kOk;
}

TensorView Image::tensor(uint32_t index) const {
  const uint8_t* e = data_ + info_.table_offset + (size_t)index * kTensorEntrySize;
  TensorView t;
  t.kind = (TensorKind)load_u16(e + ent::kKind);
  t.layer = load_u16(e + ent::kLayer);
  t.dtype = (DType)e[ent::kDType];
  t.rows = load_u32(e + ent::kRows);
  t.cols = load_u32(e + ent::kCols);
  t.row_stride = load_u32(e + ent::kRowStride);
  t.data = data_ + (size_t)load_u64(e + ent::kOffset);
  if (relocated_ && relocated_[index]) t.data = relocated_[index];
  return t;
}

Status Image::check_table() {
  const uint64_t table_end =
      (uint64_t)info_.table_offset + (uint64_t)info_.tensor_count * kTensorEntrySize;
  if (info_.table_offset < kHeaderSize || info_.table_offset % 4 != 0 ||
      table_end > info_.file_size) {
    return Status::kBadTensorTable;
  }
  const ModelConfig& c = info_.config;
  const DType wdt = matrix_dtype(info_.weight_type);
  const uint32_t group = info_.group_size;
  uint64_t prev_end = table_end;
  for (uint32_t i = 0; i < info_.tensor_count; i++) {
    failed_tensor_ = (int)i;
    const uint8_t* e = data_ + info_.table_offset + (size_t)i * kTensorEntrySize;
    const uint16_t kind = load_u16(e + ent::kKind);
    const uint16_t layer = load_u16(e + ent::kLayer);
    const uint8_t dtype = e[ent::kDType];
    const uint32_t rows = load_u32(e + ent::kRows);
    const uint32_t cols = load_u32(e + ent::kCols);
    const uint32_t stride = load_u32(e + ent::kRowStride);
    const uint64_t offset = load_u64(e + ent::kOffset);
    const uint64_t size = load_u64(e + ent::kSize);
    if (!known_kind(kind) || dtype > (uint8_t)DType::kU16 || e[5] || e[6] || e[7] ||
        load_u32(e + ent::kReserved) != 0) {
      return Status::kBadTensorTable;
    }
    // Inside the file, aligned, in order, not overlapping the table or each other.
    if (offset % kTensorAlign != 0 || offset < prev_end || offset > info_.file_size ||
        size > info_.file_size - offset) {
      return Status::kBadTensorTable;
    }
    prev_end = offset + size;
    if (rows == 0 || cols == 0 || cols > kMaxBig * 16 || rows > kMaxBig)
      return Status::kBadTensorShape;
    const DType dt = (DType)dtype;
    if ((dt == DType::kQ8 || dt == DType::kQ4) && group == 0) return Status::kBadTensorShape;
    if (stride != row_stride_bytes(dt, cols, group ? group : 1) ||
        (uint64_t)rows * stride != size) {
      return Status::kBadTensorShape;
    }
    // Expected shape and type by kind.
    const TensorKind k = (TensorKind)kind;
    const bool per_layer = is_layer_kind(k);
    if (per_layer ? (layer < info_.layer_begin || layer >= info_.layer_end) : layer != kNoLayer) {
      return Status::kBadTensorTable;
    }
    uint32_t er = 0, ec = 0;
    DType edt = wdt;
    switch (k) {
      case TensorKind::kTokEmbedding:
        er = c.vocab_size;
        ec = c.dim;
        break;
      case TensorKind::kClassifier:
        er = info_.has(kFlagClassifierSlice) ? info_.cls_row_end - info_.cls_row_begin
                                             : c.vocab_size;
        ec = c.dim;
        break;
      case TensorKind::kRmsAtt:
      case TensorKind::kRmsFfn:
      case TensorKind::kRmsFinal:
        er = 1;
        ec = c.dim;
        edt = DType::kF32;
        break;
      case TensorKind::kWq:
      case TensorKind::kWo:
        er = c.dim;
        ec = c.dim;
        break;
      case TensorKind::kWk:
      case TensorKind::kWv:
        er = c.kv_dim();
        ec = c.dim;
        break;
      case TensorKind::kW1:
      case TensorKind::kW3:
        er = c.hidden_dim;
        ec = c.dim;
        break;
      case TensorKind::kW2:
        er = c.dim;
        ec = c.hidden_dim;
        break;
      case TensorKind::kTokScores:
        er = 1;
        ec = c.vocab_size;
        edt = DType::kF32;
        break;
      case TensorKind::kTokOffsets:
        er = 1;
        ec = c.vocab_size + 1;
        edt = DType::kU32;
        break;
      case TensorKind::kTokBytes:
        er = 1;
        ec = cols;
        edt = DType::kU8;
        break;
      case TensorKind::kTokSorted:
        er = 1;
        ec = c.vocab_size;
        edt = c.vocab_size <= 65536 ? DType::kU16 : DType::kU32;
        break;
    }
    // A mixed-precision image may hold any matrix as Q4 or Q8.
    const bool mixed_ok = (info_.quant_method & kQuantMixed) != 0 && edt == wdt &&
                          wdt != DType::kF32 && (dt == DType::kQ4 || dt == DType::kQ8);
    if (rows != er || cols != ec || (dt != edt && !mixed_ok)) return Status::kBadTensorShape;
  }
  failed_tensor_ = -1;
  return Status::kOk;
}

bool Image::find(TensorKind kind, uint32_t layer, TensorView* out) const {
  if (data_ == nullptr) return false;
  for (uint32_t i = 0; i < info_.tensor_count; i++) {
    const uint8_t* e = data_ + info_.table_offset + (size_t)i * kTensorEntrySize;
    if (load_u16(e + ent::kKind) == (uint16_t)kind && load_u16(e + ent::kLayer) == layer) {
      *out = tensor(i);
      return true;
    }
  }
  return false;
}

Status Image::check_required() const {
  // Every tensor exactly once where the flags and layer range promise it, nothing else.
  uint32_t expected = 0;
  auto count = [&](TensorKind kind, uint32_t layer) {
    uint32_t n = 0;
    for (uint32_t i = 0; i < info_.tensor_count; i++) {
      const uint8_t* e = data_ + info_.table_offset + (size_t)i * kTensorEntrySize;
      if (load_u16(e + ent::kKind) == (uint16_t)kind && load_u16(e + ent::kLayer) == layer) n++;
    }
    return n;
  };
  auto need = [&](TensorKind kind, uint32_t layer) {
    expected++;
    return count(kind, layer) == 1;
  };
  const bool shared = info_.config.shared_classifier;
  const bool has_cls = info_.has(kFlagHasClassifier);
  if (info_.has(kFlagHasEmbedding) || (has_cls && shared)) {
    if (!need(TensorKind::kTokEmbedding, kNoLayer)) return Status::kMissingTensor;
  }
  if (has_cls) {
    if (!need(TensorKind::kRmsFinal, kNoLayer)) return Status::kMissingTensor;
    if (!shared && !need(TensorKind::kClassifier, kNoLayer)) return Status::kMissingTensor;
  } else if (info_.has(kFlagClassifierSlice)) {
    if (!need(TensorKind::kClassifier, kNoLayer)) return Status::kMissingTensor;  // its rows
  }
  if (info_.has(kFlagHasTokenizer)) {
    for (TensorKind k : kTokenizerKinds) {
      if (!need(k, kNoLayer)) return Status::kMissingTensor;
    }
  }
  for (uint32_t l = info_.layer_begin; l < info_.layer_end; l++) {
    for (TensorKind k : kLayerKinds) {
      if (!need(k, l)) return Status::kMissingTensor;
    }
  }
  if (expected != info_.tensor_count) return Status::kBadTensorTable;  // unexpected extras
  return Status::kOk;
}

TokenizerData Image::tokenizer() const {
  TokenizerData t;
  TensorView v;
  t.vocab_size = info_.config.vocab_size;
  t.max_token_len = info_.tok_max_len;
  t.bos_id = info_.bos_id;
  t.eos_id = info_.eos_id;
  if (find(TensorKind::kTokScores, kNoLayer, &v)) t.scores = reinterpret_cast<const float*>(v.data);
  if (find(TensorKind::kTokOffsets, kNoLayer, &v)) {
    t.offsets = reinterpret_cast<const uint32_t*>(v.data);
  }
  if (find(TensorKind::kTokBytes, kNoLayer, &v)) t.bytes = v.data;
  if (find(TensorKind::kTokSorted, kNoLayer, &v)) {
    t.sorted = v.data;
    t.sorted_width = v.dtype == DType::kU16 ? 2 : 4;
  }
  return t;
}

Status Image::check_tokenizer() const {
  if (!info_.has(kFlagHasTokenizer)) return Status::kOk;
  TensorView offs, bytes, sorted;
  find(TensorKind::kTokOffsets, kNoLayer, &offs);
  find(TensorKind::kTokBytes, kNoLayer, &bytes);
  find(TensorKind::kTokSorted, kNoLayer, &sorted);
  const uint32_t vocab = info_.config.vocab_size;
  const uint32_t nbytes = bytes.cols;
  const uint32_t width = sorted.dtype == DType::kU16 ? 2 : 4;
  auto sorted_id = [&](uint32_t i) {
    return width == 2 ? (uint32_t)load_u16(sorted.data + 2 * i) : load_u32(sorted.data + 4 * i);
  };
  if (load_u32(offs.data) != 0) return Status::kBadTokenizer;
  uint32_t longest = 0;
  for (uint32_t i = 0; i < vocab; i++) {
    const uint32_t a = load_u32(offs.data + 4 * i), b = load_u32(offs.data + 4 * (i + 1));
    if (b < a || b > nbytes) return Status::kBadTokenizer;
    if (b - a > longest) longest = b - a;
  }
  if (load_u32(offs.data + 4 * vocab) != nbytes || longest > info_.tok_max_len) {
    return Status::kBadTokenizer;
  }
  // Sorted ids strictly increasing in (piece, id) order: a permutation, ready for lookup.
  for (uint32_t i = 0; i < vocab; i++) {
    const uint32_t id = sorted_id(i);
    if (id >= vocab) return Status::kBadTokenizer;
    if (i == 0) continue;
    const uint32_t prev = sorted_id(i - 1);
    const uint32_t pa = load_u32(offs.data + 4 * prev), pb = load_u32(offs.data + 4 * (prev + 1));
    const uint32_t ca = load_u32(offs.data + 4 * id), cb = load_u32(offs.data + 4 * (id + 1));
    if (compare_piece(bytes.data + pa, pb - pa, prev, bytes.data + ca, cb - ca, id) >= 0) {
      return Status::kBadTokenizer;
    }
  }
  return Status::kOk;
}

const char* tensor_kind_name(TensorKind k) {
  switch (k) {
    case TensorKind::kTokEmbedding:
      return "tok_embedding";
    case TensorKind::kRmsAtt:
      return "rms_att";
    case TensorKind::kWq:
      return "wq";
    case TensorKind::kWk:
      return "wk";
    case TensorKind::kWv:
      return "wv";
    case TensorKind::kWo:
      return "wo";
    case TensorKind::kRmsFfn:
      return "rms_ffn";
    case TensorKind::kW1:
      return "w1";
    case TensorKind::kW2:
      return "w2";
    case TensorKind::kW3:
      return "w3";
    case TensorKind::kRmsFinal:
      return "rms_final";
    case TensorKind::kClassifier:
      return "classifier";
    case TensorKind::kTokScores:
      return "tok_scores";
    case TensorKind::kTokOffsets:
      return "tok_offsets";
    case TensorKind::kTokBytes:
      return "tok_bytes";
    case TensorKind::kTokSorted:
      return "tok_sorted";
  }
  return "unknown";
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::kF32:
      return "f32";
    case DType::kQ8:
      return "q8";
    case DType::kQ4:
      return "q4";
    case DType::kU8:
      return "u8";
    case DType::kU32:
      return "u32";
    case DType::kU16:
      return "u16";
  }
  return "?";
}

const char* weight_type_name(WeightType t) {
  switch (t) {
    case WeightType::kF32:
      return "f32";
    case WeightType::kQ8:
      return "q8";
    case WeightType::kQ4:
      return "q4";
  }
  return "?";
}

const char* kv_type_name(KvType t) {
  return t == KvType::kF16 ? "f16" : (t == KvType::kI8 ? "i8" : "f32");
}

}  // namespace llmwire
