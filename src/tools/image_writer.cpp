// Image layout (docs/FORMAT.md): 256-byte header, tensor table at 256, then every tensor at a
// 64-byte aligned offset in table order, zero bytes in the gaps; the file ends where the last
// tensor ends.
#include "tools/image_writer.h"

#include <string.h>

#include "engine/crc32c.h"
#include "engine/fp16.h"
#include "platform/host/output_file.h"
#include "tools/quantize.h"

namespace llmwire {
namespace {

uint64_t align_up(uint64_t v, uint64_t a) {
  return (v + a - 1) / a * a;
}

struct Fnv1a {
  uint64_t h = 0xcbf29ce484222325ull;
  void byte(uint8_t b) {
    h ^= b;
    h *= 0x100000001b3ull;
  }
  void bytes(const uint8_t* p, size_t n) {
    uint64_t x = h;
    for (size_t i = 0; i < n; i++) {
      x ^= p[i];
      x *= 0x100000001b3ull;
    }
    h = x;
  }
  void u32(uint32_t v) {
    for (int i = 0; i < 4; i++) byte((uint8_t)(v >> (8 * i)));
  }
};

}  // namespace

void ImageWriter::add_raw(TensorKind kind, uint32_t layer, DType dtype, uint32_t rows,
                          uint32_t cols, uint32_t row_stride, const void* data) {
  Entry e{kind, layer, dtype, rows, cols, row_stride, {}};
  const uint8_t* p = static_cast<const uint8_t*>(data);
  e.bytes.assign(p, p + (size_t)rows * row_stride);
  entries_.push_back(std::move(e));
}

void ImageWriter::add_matrix(TensorKind kind, uint32_t layer, DType dtype, uint32_t rows,
                             uint32_t cols, uint32_t group, const float* data) {
  const uint32_t stride = row_stride_bytes(dtype, cols, group ? group : 1);
  Entry e{kind, layer, dtype, rows, cols, stride, {}};
  e.bytes.resize((size_t)rows * stride);
  encode_matrix(data, rows, cols, dtype, group, e.bytes.data());
  entries_.push_back(std::move(e));
}

// The model id covers what makes two images compute the same function: the shape (dim,
// hidden, layers, heads, kv heads, vocab, shared classifier), the quantization (weight type,
// group), norm_eps, rope_theta, and every tensor's kind, layer, dtype, shape and bytes in
// table order. It excludes the stage fields (stage index/count, layer range, flags), seq_len,
// kv_type and the name: those are run-time or packaging choices. A stage image holds only a
// subset of the tensors, so the id is computed once for the whole model and copied into
// every stage (ImageWriter keeps a non-zero info.model_id as it is).
uint64_t compute_model_id(const ImageInfo& info, const std::vector<ImageWriter::Entry>& entries) {
  Fnv1a f;
  const ModelConfig& c = info.config;
  f.u32(c.dim);
  f.u32(c.hidden_dim);
  f.u32(c.n_layers);
  f.u32(c.n_heads);
  f.u32(c.n_kv_heads);
  f.u32(c.vocab_size);
  f.u32(c.shared_classifier ? 1u : 0u);
  f.u32((uint32_t)info.weight_type);
  f.u32(info.group_size);
  f.u32(bits_from_f32(info.norm_eps));
  f.u32(bits_from_f32(info.rope_theta));
  for (const ImageWriter::Entry& e : entries) {
    f.u32((uint32_t)e.kind);
    f.u32(e.layer);
    f.u32((uint32_t)e.dtype);
    f.u32(e.rows);
    f.u32(e.cols);
    f.u32(e.row_stride);
    f.bytes(e.bytes.data(), e.bytes.size());
  }
  return f.h == 0 ? 1 : f.h;  // 0 means "not computed yet"
}

std::vector<uint8_t> ImageWriter::finish() {
  const uint32_t count = (uint32_t)entries_.size();
  info_.tensor_count = count;
  info_.table_offset = kHeaderSize;
  info_.header_size = kHeaderSize;
  info_.version = kImageVersion;
  std::vector<uint64_t> offsets(count);
  uint64_t end = (uint64_t)kHeaderSize + (uint64_t)count * kTensorEntrySize;
  for (uint32_t i = 0; i < count; i++) {
    offsets[i] = align_up(end, kTensorAlign);
    end = offsets[i] + entries_[i].bytes.size();
  }
  info_.file_size = end;
  if (info_.model_id == 0) info_.model_id = compute_model_id(info_, entries_);

  std::vector<uint8_t> out((size_t)end, 0);
  for (uint32_t i = 0; i < count; i++) {
    const Entry& e = entries_[i];
    uint8_t* t = out.data() + kHeaderSize + (size_t)i * kTensorEntrySize;
    store_u16(t + ent::kKind, (uint16_t)e.kind);
    store_u16(t + ent::kLayer, (uint16_t)e.layer);
    t[ent::kDType] = (uint8_t)e.dtype;
    store_u32(t + ent::kRows, e.rows);
    store_u32(t + ent::kCols, e.cols);
    store_u32(t + ent::kRowStride, e.row_stride);
    store_u32(t + ent::kReserved, 0);
    store_u64(t + ent::kOffset, offsets[i]);
    store_u64(t + ent::kSize, e.bytes.size());
    if (!e.bytes.empty()) memcpy(out.data() + offsets[i], e.bytes.data(), e.bytes.size());
  }
  info_.payload_crc = crc32c(out.data() + kHeaderSize, out.size() - kHeaderSize);
  encode_header(info_, out.data());
  return out;
}

bool ImageWriter::write(const std::string& path, std::string* err) {
  OutputFile out;
  if (!out.open(path, {}, err)) return false;
  const std::vector<uint8_t> bytes = finish();
  out.write(bytes.data(), bytes.size());
  return out.commit(err);
}

}  // namespace llmwire
