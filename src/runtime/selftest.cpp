#include "runtime/selftest.h"

#include <string.h>

namespace llmwire {
namespace {

// The first matrix the image holds: a layer's wq, else the classifier or embedding.
bool pick_matrix(const Image& image, TensorView* w) {
  const ImageInfo& info = image.info();
  if (info.layer_begin < info.layer_end && image.find(TensorKind::kWq, info.layer_begin, w))
    return true;
  if (image.find(TensorKind::kClassifier, kNoLayer, w)) return true;
  return image.find(TensorKind::kTokEmbedding, kNoLayer, w);
}

uint32_t widest_cols(const ImageInfo& info) {
  const ModelConfig& c = info.config;
  return c.hidden_dim > c.dim ? c.hidden_dim : c.dim;
}

uint32_t groups_for(uint32_t n, uint32_t group) {
  return group ? (n + group - 1) / group : 0;
}

}  // namespace

size_t selftest_bytes(const ImageInfo& info) {
  Arena a;
  const uint32_t cols = widest_cols(info), g = info.group_size ? info.group_size : 1;
  const uint32_t groups = groups_for(cols, g);
  a.take<float>(cols);
  a.take<int8_t>((size_t)groups * g);
  a.take<float>(groups);
  a.take<int32_t>(groups);
  a.take<float>(2 * kSelfTestRows);
  return a.used();
}

SelfTestResult kernel_selftest(const Image& image, MatmulFn candidate, MatmulFn reference,
                               Arena* scratch) {
  SelfTestResult r;
  TensorView w;
  if (!pick_matrix(image, &w) || w.cols > widest_cols(image.info())) return r;
  const uint32_t group = image.info().group_size;
  const uint32_t g = group ? group : 1;
  const uint32_t groups = groups_for(w.cols, g);
  float* x = scratch->take<float>(w.cols);
  int8_t* q = scratch->take<int8_t>((size_t)groups * g);
  float* s = scratch->take<float>(groups);
  int32_t* qs = scratch->take<int32_t>(groups);
  float* out = scratch->take<float>(2 * kSelfTestRows);
  if (!x || !q || !s || !qs || !out) return r;

  // A fixed input with both signs and a spread of magnitudes (xorshift32, seed 1).
  uint32_t state = 1;
  for (uint32_t i = 0; i < w.cols; i++) {
    state ^= state << 13;
    state ^= state >> 17;
    state ^= state << 5;
    x[i] = ((float)(int32_t)(state >> 8) - 8388608.0f) / 4194304.0f;
  }
  QuantizedInput xq;
  MatmulInput in;
  in.x = x;
  in.x_stride = w.cols;
  if (w.dtype != DType::kF32) {
    quantize_input(x, w.cols, g, q, s, qs);
    xq.q = q;
    xq.scale = s;
    xq.qsum = qs;
    xq.groups = groups;
    in.xq = &xq;
  }
  const uint32_t rows = w.rows < kSelfTestRows ? w.rows : kSelfTestRows;
  candidate(w, group, in, out, rows, 0, rows);
  reference(w, group, in, out + kSelfTestRows, rows, 0, rows);
  r.ran = true;
  r.rows = rows;
  r.cols = w.cols;
  for (uint32_t i = 0; i < rows; i++) {
    if (memcmp(&out[i], &out[kSelfTestRows + i], sizeof(float)) != 0) {
      r.identical = false;
      r.first_bad_row = i;
      break;
    }
  }
  return r;
}

}  // namespace llmwire
