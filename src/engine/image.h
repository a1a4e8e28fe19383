// A validated, read-in-place view of an image (whole model or one board's stage).
// open() checks every byte the engine will rely on before anything is used; after that the
// engine trusts the tensor views. No allocation: the table is re-scanned on lookup.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "engine/image_header.h"
#include "engine/tokenizer.h"

namespace llmwire {

struct TensorView {
  TensorKind kind = TensorKind::kTokEmbedding;
  uint32_t layer = kNoLayer;
  DType dtype = DType::kF32;
  uint32_t rows = 0;
  uint32_t cols = 0;
  uint32_t row_stride = 0;  // bytes
  const uint8_t* data = nullptr;

  const uint8_t* row(uint32_t r) const { return data + (size_t)r * row_stride; }
  uint64_t bytes() const { return (uint64_t)rows * row_stride; }
};

class Image {
 public:
  // `data` must stay mapped while the Image is used and be 4-byte aligned.
  // verify_payload=false skips the payload CRC (e.g. a board that verified it once).
  Status open(const uint8_t* data, size_t len, bool verify_payload = true);

  const ImageInfo& info() const { return info_; }
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

  uint32_t tensor_count() const { return info_.tensor_count; }
  TensorView tensor(uint32_t index) const;
  // The tensor of that kind (and layer), or false.
  bool find(TensorKind kind, uint32_t layer, TensorView* out) const;
  bool holds_layer(uint32_t layer) const {
    return layer >= info_.layer_begin && layer < info_.layer_end;
  }
  // Tokenizer arrays (valid only when the image has a tokenizer).
  TokenizerData tokenizer() const;

  // Tensors copied out of the mapped image (weight placement, runtime/placement.h):
  // tensor(i) then reads from at[i] when it is not null. `at` holds tensor_count() pointers,
  // is owned by the caller and outlives the image; nullptr reads everything in place.
  void relocate(const uint8_t* const* at) { relocated_ = at; }

  // Where open() failed, for messages: the tensor index involved, or -1.
  int failed_tensor() const { return failed_tensor_; }

 private:
  Status check_config() const;
  Status check_table();
  Status check_required() const;
  Status check_tokenizer() const;

  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  ImageInfo info_;
  int failed_tensor_ = -1;
  const uint8_t* const* relocated_ = nullptr;
};

// Human-readable names for messages and `inspect`.
const char* tensor_kind_name(TensorKind k);
const char* dtype_name(DType t);
const char* weight_type_name(WeightType t);
const char* kv_type_name(KvType t);

}  // namespace llmwire
