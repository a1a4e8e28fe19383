// The transformer forward pass over an image, split-ready: embed a token, run any range of
// the layers this image holds, then the head (final norm + classifier rows). Memory comes
// from two caller-owned regions (fast: activations and scratch; big: KV cache, logits and
// attention scores); nothing is allocated after init().
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "engine/arena.h"
#include "engine/executor.h"
#include "engine/image.h"
#include "engine/kernels.h"
#include "engine/kv_cache.h"

namespace llmwire {

// Upper bound of RunOptions::prompt_batch.
constexpr uint32_t kMaxPromptBatch = 64;

struct RunOptions {
  uint32_t seq_len = 0;      // 0: the image's
  bool kv_override = false;  // use kv_type instead of the image's default
  KvType kv_type = KvType::kF32;
  bool reference_kernels = false;  // scalar reference kernels (tests, /selftest)
  // A matmul kernel by name (kernel_table()); nullptr: the best one this CPU runs.
  const char* kernel = nullptr;
  // Prompt positions run together through the layers (run_layers_batch): each weight row is
  // read once for up to this many positions. 1: token by token, no extra arena.
  uint32_t prompt_batch = 1;
  // Matmuls and attention steps smaller than this many MACs stay on the calling core
  // (waking other cores costs tens of microseconds). 0 splits everything (tests).
  uint64_t min_parallel_macs = 65536;
};

struct LayerWeights {
  TensorView rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3;
};

class Model {
 public:
  // Bytes init() takes from each region for this image and options.
  static MemoryNeeds memory_needs(const ImageInfo& info, const RunOptions& opts);

  // Takes its buffers from `fast` and `big` (which may be the same arena); kArenaTooSmall when
  // either runs out. The regions and the image must outlive the model.
  Status init(const Image& image, const RunOptions& opts, Arena* fast, Arena* big,
              Executor* executor);

  // x = embedding of `token` (images holding the embedding).
  Status embed(int32_t token, float* x);
  // Runs layers [begin, end) (within this image's range) for position `pos` on x in place.
  Status run_layers(uint32_t begin, uint32_t end, uint32_t pos, float* x);
  // Runs layers [begin, end) for the n positions pos .. pos+n-1 (n <= prompt_batch()) on
  // x[n][dim] in place, with causal attention inside the chunk; bit-identical to n calls of
  // run_layers.
  Status run_layers_batch(uint32_t begin, uint32_t end, uint32_t pos, uint32_t n, float* x);
  // logits[r0..r1) of the classifier applied to final-norm(x) (images holding the classifier).
  Status head(const float* x, uint32_t r0, uint32_t r1, float* logits);
  // Whole-vocabulary logits[n][vocab] for x[n][dim] (n <= prompt_batch()), reading the
  // classifier once for all n; bit-identical to n calls of head(). Speculative decoding's
  // verification pass uses it.
  Status head_batch(const float* x, uint32_t n, float* logits);
  // xn[dim] = final-norm(x), the classifier's input (images holding the final norm: the head).
  Status final_norm(const float* x, float* xn);
  // out[0 .. r1-r0) = classifier rows [r0, r1) applied to xn; the rows must lie within
  // [classifier_begin(), classifier_held_end()). xn may be the model's own buffer.
  Status classify(const float* xn, uint32_t r0, uint32_t r1, float* out);
  // Classifier rows this image computes: [0, vocab) unsplit, its slice of a classifier split
  // across the ring (kFlagClassifierSlice), or an empty range.
  uint32_t classifier_begin() const { return cls_begin_; }
  uint32_t classifier_end() const { return cls_end_; }
  // One past the last row classify() accepts: classifier_end(), or the whole vocabulary on a
  // head whose classifier is the embedding (it holds every row even when the ring splits them).
  uint32_t classifier_held_end() const { return cls_held_end_; }

  const ModelConfig& config() const { return config_; }
  const ImageInfo& info() const { return image_->info(); }
  uint32_t seq_len() const { return seq_len_; }
  KvType kv_type() const { return kv_.type(); }
  const char* kernel_name() const { return kernel_name_; }
  float* x() { return buf_.x; }            // residual stream buffer [dim]
  float* logits() { return buf_.logits; }  // [vocab] (head images)
  float* batch_x() { return bat_.x; }      // [prompt_batch][dim] residual streams
  uint32_t prompt_batch() const { return prompt_batch_; }
  // Bytes of weights read so far (counted as the kernels are called).
  uint64_t weight_bytes_read() const { return weight_bytes_read_; }
  void reset_counters() { weight_bytes_read_ = 0; }

 private:
  struct Buffers;
  struct BatchBuffers;
  static void layout(const ImageInfo& info, const RunOptions& opts, Arena* fast, Arena* big,
                     Buffers* t, BatchBuffers* bt);
  // out[b][w.rows] = W . input b, for b < batch (x_f32: [batch][w.cols]).
  void matmul(const TensorView& w, const float* x_f32, const QuantizedInput* xq, float* out,
              uint32_t batch = 1);
  void quantize(const float* x, uint32_t n, QuantizedInput* out, int8_t* q, float* s, int32_t* qs);
  void quantize_batch(const float* src, uint32_t len, uint32_t n, bool hidden_side);
  void rmsnorm(float* out, const float* x, const TensorView& w) const;
  // Positions pos..pos+n-1 (their K and V already stored), q and out rows dim floats apart.
  void attention(uint32_t local_layer, uint32_t pos, uint32_t n, const float* q, float* out);
  void rope_table(uint32_t pos, float* cs) const;
  void rope(const float* cs, float* q, float* k) const;

  const Image* image_ = nullptr;
  Executor* exec_ = nullptr;
  MatmulFn matmul_fn_ = nullptr;
  QuantizeFn quantize_fn_ = nullptr;
  AttendFn attend_fn_ = nullptr;
  const char* kernel_name_ = "";
  ModelConfig config_;
  uint32_t group_ = 0;
  bool quantized_ = false;
  uint32_t seq_len_ = 0;
  uint32_t layer_begin_ = 0, layer_end_ = 0;
  LayerWeights* layers_ = nullptr;  // [layer_end_ - layer_begin_], from the fast region
  TensorView embedding_, classifier_, rms_final_;
  bool has_embedding_ = false, has_classifier_ = false;
  uint32_t cls_begin_ = 0, cls_end_ = 0;  // classifier rows this image computes
  uint32_t cls_held_end_ = 0;             // ... and can compute
  float norm_eps_ = 1e-5f;
  uint64_t min_parallel_macs_ = 65536;

  // Buffers carved from the regions.
  struct Buffers {
    LayerWeights* layers;
    float *x, *xb, *xb2, *q, *k, *v, *hb, *hb2, *att, *logits;
    float* rope_freq;  // [head_size / 2]
    float* rope_cs;    // [head_size] cos, sin pairs for the current position
    int8_t *xq_q, *hq_q;
    float *xq_s, *hq_s;
    int32_t *xq_sum, *hq_sum;
    void* kv;
  };
  Buffers buf_ = {};
  // Per-position copies for run_layers_batch ([prompt_batch] rows each); null when it is 1.
  struct BatchBuffers {
    float *x, *xb, *xb2, *q, *k, *v, *hb, *hb2;
    int8_t *xq_q, *hq_q;
    float *xq_s, *hq_s;
    int32_t *xq_sum, *hq_sum;
    QuantizedInput *xq, *hq;
    float* rope_cs;  // [prompt_batch][head_size]
  };
  BatchBuffers bat_ = {};
  uint32_t prompt_batch_ = 1;
  KvCache kv_;
  uint64_t weight_bytes_read_ = 0;
};

}  // namespace llmwire
