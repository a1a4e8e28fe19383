// Builds an image file: header, tensor table, 64-byte aligned tensor data, checksums.
// Used by convert (from a checkpoint) and split (from another image's raw tensors).
#pragma once

#include <stdint.h>

#include <string>
#include <vector>

#include "engine/image_header.h"

namespace llmwire {

class ImageWriter {
 public:
  explicit ImageWriter(const ImageInfo& info) : info_(info) {}

  // Adds a tensor whose rows are already encoded (rows * row_stride bytes).
  void add_raw(TensorKind kind, uint32_t layer, DType dtype, uint32_t rows, uint32_t cols,
               uint32_t row_stride, const void* data);
  // Adds a float matrix, encoding each row as `dtype` (F32/Q8/Q4) with `group`.
  void add_matrix(TensorKind kind, uint32_t layer, DType dtype, uint32_t rows, uint32_t cols,
                  uint32_t group, const float* data);

  // Lays out the image; if model_id is 0 it is computed from config + tensor bytes.
  // Returns the finished bytes (header CRCs included).
  std::vector<uint8_t> finish();
  bool write(const std::string& path, std::string* err);

  struct Entry {
    TensorKind kind;
    uint32_t layer;
    DType dtype;
    uint32_t rows, cols, row_stride;
    std::vector<uint8_t> bytes;
  };
  const std::vector<Entry>& entries() const { return entries_; }
  ImageInfo& info() { return info_; }

 private:
  ImageInfo info_;
  std::vector<Entry> entries_;
};

// FNV-1a 64 of the config fields and every tensor's bytes (stage fields excluded), so all
// stages cut from one model agree.
uint64_t compute_model_id(const ImageInfo& info, const std::vector<ImageWriter::Entry>& entries);

}  // namespace llmwire
