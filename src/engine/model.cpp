#include "engine/model.h"

#include <string.h>

#include "engine/mathfn.h"
#include "engine/sampler.h"

namespace llmwire {
namespace {

uint32_t groups_of(uint32_t n, uint32_t group) {
  return group ? (n + group - 1) / group : 0;
}

}  // namespace

void Model::layout(const ImageInfo& info, const RunOptions& opts, Arena* fast, Arena* big,
                   Buffers* t, BatchBuffers* bt) {
  const ModelConfig& c = info.config;
  const uint32_t seq = opts.seq_len ? opts.seq_len : c.seq_len;
  const KvType kv = opts.kv_override ? opts.kv_type : info.kv_type;
  const uint32_t group = info.group_size;
  const uint32_t layers = info.layer_end - info.layer_begin;
  // Fast region: what every matmul touches.
  t->layers = fast->take<LayerWeights>(layers);
  t->x = fast->take<float>(c.dim);
  t->xb = fast->take<float>(c.dim);
  t->xb2 = fast->take<float>(c.dim);
  t->q = fast->take<float>(c.dim);
  t->k = fast->take<float>(c.kv_dim());
  t->v = fast->take<float>(c.kv_dim());
  t->hb = fast->take<float>(c.hidden_dim);
  t->hb2 = fast->take<float>(c.hidden_dim);
  t->rope_freq = fast->take<float>(c.head_size() / 2);
  t->rope_cs = fast->take<float>(c.head_size());
  if (group) {
    const uint32_t xg = groups_of(c.dim, group), hg = groups_of(c.hidden_dim, group);
    t->xq_q = fast->take<int8_t>((size_t)xg * group);
    t->xq_s = fast->take<float>(xg);
    t->xq_sum = fast->take<int32_t>(xg);
    t->hq_q = fast->take<int8_t>((size_t)hg * group);
    t->hq_s = fast->take<float>(hg);
    t->hq_sum = fast->take<int32_t>(hg);
  }
  // Big region: grows with the sequence length or the vocabulary.
  t->att = big->take<float>((size_t)c.n_heads * seq);
  // The head assembles the whole vocabulary; a worker holds only its classifier slice.
  t->logits = info.has(kFlagHasClassifier) ? big->take<float>(c.vocab_size)
              : info.has(kFlagClassifierSlice)
                  ? big->take<float>(info.cls_row_end - info.cls_row_begin)
                  : nullptr;
  t->kv = big->take<uint8_t>(KvCache::bytes(kv, layers, seq, c.kv_dim(), c.n_kv_heads));
  // Fast region, prompt batches (RunOptions::prompt_batch > 1): per-position copies.
  *bt = BatchBuffers{};
  const uint32_t n = opts.prompt_batch;
  if (n > 1) {
    bt->x = fast->take<float>((size_t)n * c.dim);
    bt->xb = fast->take<float>((size_t)n * c.dim);
    bt->xb2 = fast->take<float>((size_t)n * c.dim);
    bt->q = fast->take<float>((size_t)n * c.dim);
    bt->k = fast->take<float>((size_t)n * c.kv_dim());
    bt->v = fast->take<float>((size_t)n * c.kv_dim());
    bt->hb = fast->take<float>((size_t)n * c.hidden_dim);
    bt->hb2 = fast->take<float>((size_t)n * c.hidden_dim);
    bt->rope_cs = fast->take<float>((size_t)n * c.head_size());
    if (group) {
      const uint32_t xg = groups_of(c.dim, group), hg = groups_of(c.hidden_dim, group);
      bt->xq_q = fast->take<int8_t>((size_t)n * xg * group);
      bt->xq_s = fast->take<float>((size_t)n * xg);
      bt->xq_sum = fast->take<int32_t>((size_t)n * xg);
      bt->hq_q = fast->take<int8_t>((size_t)n * hg * group);
      bt->hq_s = fast->take<float>((size_t)n * hg);
      bt->hq_sum = fast->take<int32_t>((size_t)n * hg);
      bt->xq = fast->take<QuantizedInput>(n);
      bt->hq = fast->take<QuantizedInput>(n);
    }
  }
}

MemoryNeeds Model::memory_needs(const ImageInfo& info, const RunOptions& opts) {
  Arena fast, big;
  Buffers unused;
  BatchBuffers unused_batch;
  layout(info, opts, &fast, &big, &unused, &unused_batch);
  return MemoryNeeds{fast.used(), big.used()};
}

Status Model::init(const Image& image, const RunOptions& opts, Arena* fast, Arena* big,
                   Executor* executor) {
  const ImageInfo& info = image.info();
  if (image.data() == nullptr || executor == nullptr || !fast || !big) return Status::kBadArgument;
  if (opts.seq_len > info.config.seq_len) return Status::kBadArgument;
  if (opts.prompt_batch > kMaxPromptBatch) return Status::kBadArgument;
  const Kernel* kernel = opts.reference_kernels ? find_kernel("reference")
                         : opts.kernel          ? find_kernel(opts.kernel)
                                                : best_kernel();
  if (kernel == nullptr) return Status::kBadArgument;  // unknown, or this CPU cannot run it
  if (fast->counting() || big->counting()) return Status::kArenaTooSmall;
  layout(info, opts, fast, big, &buf_, &bat_);
  if (fast->overflowed() || big->overflowed()) return Status::kArenaTooSmall;
  image_ = &image;
  exec_ = executor;
  matmul_fn_ = kernel->matmul;
  quantize_fn_ = kernel->quantize;
  attend_fn_ = kernel->attend ? kernel->attend : attend_reference;
  kernel_name_ = kernel->name;
  config_ = info.config;
  group_ = info.group_size;
  quantized_ = info.weight_type != WeightType::kF32;
  seq_len_ = opts.seq_len ? opts.seq_len : config_.seq_len;
  layer_begin_ = info.layer_begin;
  layer_end_ = info.layer_end;
  norm_eps_ = info.norm_eps;
  min_parallel_macs_ = opts.min_parallel_macs;
  layers_ = buf_.layers;
  prompt_batch_ = opts.prompt_batch > 1 ? opts.prompt_batch : 1;
  kv_.init(opts.kv_override ? opts.kv_type : info.kv_type, layer_end_ - layer_begin_, seq_len_,
           config_.kv_dim(), config_.n_kv_heads, buf_.kv);

  for (uint32_t l = layer_begin_; l < layer_end_; l++) {
    LayerWeights& w = layers_[l - layer_begin_];
    const bool ok =
        image.find(TensorKind::kRmsAtt, l, &w.rms_att) && image.find(TensorKind::kWq, l, &w.wq) &&
        image.find(TensorKind::kWk, l, &w.wk) && image.find(TensorKind::kWv, l, &w.wv) &&
        image.find(TensorKind::kWo, l, &w.wo) && image.find(TensorKind::kRmsFfn, l, &w.rms_ffn) &&
        image.find(TensorKind::kW1, l, &w.w1) && image.find(TensorKind::kW2, l, &w.w2) &&
        image.find(TensorKind::kW3, l, &w.w3);
    if (!ok) return Status::kMissingTensor;
  }
  has_embedding_ = image.find(TensorKind::kTokEmbedding, kNoLayer, &embedding_);
  has_classifier_ = info.has(kFlagHasClassifier);
  cls_begin_ = cls_end_ = 0;
  if (has_classifier_) {
    if (!image.find(TensorKind::kRmsFinal, kNoLayer, &rms_final_)) return Status::kMissingTensor;
    if (config_.shared_classifier) {
      if (!has_embedding_) return Status::kMissingTensor;
      classifier_ = embedding_;
    } else if (!image.find(TensorKind::kClassifier, kNoLayer, &classifier_)) {
      return Status::kMissingTensor;
    }
    cls_end_ = config_.vocab_size;
  } else if (info.has(kFlagClassifierSlice) &&
             !image.find(TensorKind::kClassifier, kNoLayer, &classifier_)) {
    return Status::kMissingTensor;
  }
  if (info.has(kFlagClassifierSlice)) {
    cls_begin_ = info.cls_row_begin;
    cls_end_ = info.cls_row_end;
  }
  cls_held_end_ = has_classifier_ && config_.shared_classifier ? config_.vocab_size : cls_end_;
  // RoPE frequencies theta^(-2i/hs), from our own exp/log (no platform libm).
  const uint32_t hs = config_.head_size();
  const float log_theta = log_f32(info.rope_theta);
  for (uint32_t i = 0; i < hs / 2; i++) {
    buf_.rope_freq[i] = exp_f32(-((float)(2 * i) / (float)hs) * log_theta);
  }
  weight_bytes_read_ = 0;
  return Status::kOk;
}

Status Model::embed(int32_t token, float* x) {
  if (!has_embedding_) return Status::kNotInImage;
  if (token < 0 || (uint32_t)token >= config_.vocab_size) return Status::kBadArgument;
  const uint8_t* row = embedding_.row((uint32_t)token);
  weight_bytes_read_ += embedding_.row_stride;
  const uint32_t dim = config_.dim;
  if (embedding_.dtype == DType::kF32) {
    memcpy(x, row, (size_t)dim * 4);
    return Status::kOk;
  }
  const uint32_t groups = groups_of(dim, group_);
  const uint8_t* data = row + ((groups * 2u + 3u) & ~3u);
  for (uint32_t i = 0; i < dim; i++) {
    const uint32_t g = i / group_, j = i % group_;
    const float s = half_to_float(load_u16(row + 2 * g));
    int32_t q;
    if (embedding_.dtype == DType::kQ8) {
      q = (int8_t)data[(size_t)g * group_ + j];
    } else {
      const uint8_t byte = data[(size_t)g * (group_ / 2) + (j % (group_ / 2))];
      q = (int32_t)(j < group_ / 2 ? (byte & 0x0F) : (byte >> 4)) - 8;
    }
    x[i] = s * (float)q;
  }
  return Status::kOk;
}

void Model::rmsnorm(float* out, const float* x, const TensorView& w) const {
  const uint32_t n = config_.dim;
  float ss = 0.0f;
  for (uint32_t i = 0; i < n; i++) ss = ss + x[i] * x[i];
  ss = ss / (float)n;
  ss = ss + norm_eps_;
  const float r = 1.0f / sqrt_f32(ss);
  for (uint32_t i = 0; i < n; i++) {
    float wi;
    memcpy(&wi, w.data + 4 * i, 4);
    out[i] = wi * (r * x[i]);
  }
}

void Model::quantize(const float* x, uint32_t n, QuantizedInput* out, int8_t* q, float* s,
                     int32_t* qs) {
  if (!quantized_) return;
  quantize_fn_(x, n, group_, q, s, qs);
  out->q = q;
  out->scale = s;
  out->qsum = qs;
  out->groups = groups_of(n, group_);
}

void Model::matmul(const TensorView& w, const float* x_f32, const QuantizedInput* xq, float* out,
                   uint32_t batch) {
  MatmulInput in;
  in.x = x_f32;
  in.x_stride = w.cols;
  in.xq = xq;
  in.batch = batch;
  const MatmulFn fn = matmul_fn_;
  const uint32_t group = group_;
  auto rows = [&](uint32_t r0, uint32_t r1) { fn(w, group, in, out, w.rows, r0, r1); };
  // Small matrices run on this core alone (RunOptions::min_parallel_macs). Either way each
  // row is computed whole by one worker, so the result is the same. Rows go out in blocks
  // of 8, the SIMD kernels' interleave.
  if ((uint64_t)w.rows * w.cols * batch < min_parallel_macs_) {
    rows(0, w.rows);
  } else {
    parallel_for(exec_, w.rows, 8, rows);
  }
  weight_bytes_read_ += w.bytes();
}

namespace {
// One head of causal attention over an fp16 cache at position `pos`: attend_reference's
// order (docs/NUMERICS.md), each element converted as it is read.
void attend_head_f16(const KvCache& kv, uint32_t l, uint32_t pos, uint32_t kv_head, uint32_t hs,
                     const float* q, float* att, float* out) {
  const float sqrt_hs = sqrt_f32((float)hs);
  const uint32_t off = kv_head * hs;
  // Four positions at a time: four independent chains, each in ascending i as below.
  uint32_t t0 = 0;
  for (; t0 + 4 <= pos + 1; t0 += 4) {
    const uint16_t* k0 = static_cast<const uint16_t*>(kv.key(l, t0)) + off;
    const uint16_t* k1 = static_cast<const uint16_t*>(kv.key(l, t0 + 1)) + off;
    const uint16_t* k2 = static_cast<const uint16_t*>(kv.key(l, t0 + 2)) + off;
    const uint16_t* k3 = static_cast<const uint16_t*>(kv.key(l, t0 + 3)) + off;
    float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
    for (uint32_t i = 0; i < hs; i++) {
      const float qi = q[i];
      s0 = s0 + qi * half_to_float_fast(k0[i]);
      s1 = s1 + qi * half_to_float_fast(k1[i]);
      s2 = s2 + qi * half_to_float_fast(k2[i]);
      s3 = s3 + qi * half_to_float_fast(k3[i]);
    }
    att[t0] = s0 / sqrt_hs;
    att[t0 + 1] = s1 / sqrt_hs;
    att[t0 + 2] = s2 / sqrt_hs;
    att[t0 + 3] = s3 / sqrt_hs;
  }
  for (uint32_t t = t0; t <= pos; t++) {
    const uint16_t* k = static_cast<const uint16_t*>(kv.key(l, t)) + off;
    float score = 0.0f;
    for (uint32_t i = 0; i < hs; i++) score = score + q[i] * half_to_float_fast(k[i]);
    att[t] = score / sqrt_hs;  // a division, as llama2.c does
  }
  softmax(att, pos + 1);
  // out[i] accumulates over t ascending; the i lanes are independent (vectorisable).
  float* __restrict o = out;
  for (uint32_t i = 0; i < hs; i++) o[i] = 0.0f;
  uint32_t t = 0;
  for (; t + 2 <= pos + 1; t += 2) {
    const uint16_t* __restrict v0 = static_cast<const uint16_t*>(kv.value(l, t)) + off;
    const uint16_t* __restrict v1 = static_cast<const uint16_t*>(kv.value(l, t + 1)) + off;
    const float a0 = att[t], a1 = att[t + 1];
    for (uint32_t i = 0; i < hs; i++) {
      o[i] = (o[i] + a0 * half_to_float_fast(v0[i])) + a1 * half_to_float_fast(v1[i]);
    }
  }
  if (t <= pos) {
    const uint16_t* __restrict v = static_cast<const uint16_t*>(kv.value(l, t)) + off;
    const float a = att[t];
    for (uint32_t i = 0; i < hs; i++) o[i] = o[i] + a * half_to_float_fast(v[i]);
  }
}

// The same head over an int8 cache. Each head vector's scale is applied once per dot product
// and once per weight a[t], not per element (docs/NUMERICS.md):
//   score[t] = ((Σ_i q[i] * (float)k_t[i]) * ks_t) / sqrt(hs);  out[i] += (a[t] * vs_t) * v_t[i]
void attend_head_i8(const KvCache& kv, uint32_t l, uint32_t pos, uint32_t kv_head, uint32_t hs,
                    const float* q, float* att, float* out) {
  const float sqrt_hs = sqrt_f32((float)hs);
  const uint32_t off = kv_head * hs;
  uint32_t t0 = 0;
  for (; t0 + 4 <= pos + 1; t0 += 4) {
    const int8_t* k0 = static_cast<const int8_t*>(kv.key(l, t0)) + off;
    const int8_t* k1 = static_cast<const int8_t*>(kv.key(l, t0 + 1)) + off;
    const int8_t* k2 = static_cast<const int8_t*>(kv.key(l, t0 + 2)) + off;
    const int8_t* k3 = static_cast<const int8_t*>(kv.key(l, t0 + 3)) + off;
    float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
    for (uint32_t i = 0; i < hs; i++) {
      const float qi = q[i];
      s0 = s0 + qi * (float)k0[i];
      s1 = s1 + qi * (float)k1[i];
      s2 = s2 + qi * (float)k2[i];
      s3 = s3 + qi * (float)k3[i];
    }
    att[t0] = (s0 * kv.key_scales(l, t0)[kv_head]) / sqrt_hs;
    att[t0 + 1] = (s1 * kv.key_scales(l, t0 + 1)[kv_head]) / sqrt_hs;
    att[t0 + 2] = (s2 * kv.key_scales(l, t0 + 2)[kv_head]) / sqrt_hs;
    att[t0 + 3] = (s3 * kv.key_scales(l, t0 + 3)[kv_head]) / sqrt_hs;
  }
  for (uint32_t t = t0; t <= pos; t++) {
    const int8_t* k = static_cast<const int8_t*>(kv.key(l, t)) + off;
    float score = 0.0f;
    for (uint32_t i = 0; i < hs; i++) score = score + q[i] * (float)k[i];
    att[t] = (score * kv.key_scales(l, t)[kv_head]) / sqrt_hs;
  }
  softmax(att, pos + 1);
  float* __restrict o = out;
  for (uint32_t i = 0; i < hs; i++) o[i] = 0.0f;
  uint32_t t = 0;
  for (; t + 2 <= pos + 1; t += 2) {
    const int8_t* __restrict v0 = static_cast<const int8_t*>(kv.value(l, t)) + off;
    const int8_t* __restrict v1 = static_cast<const int8_t*>(kv.value(l, t + 1)) + off;
    const float a0 = att[t] * kv.value_scales(l, t)[kv_head];
    const float a1 = att[t + 1] * kv.value_scales(l, t + 1)[kv_head];
    for (uint32_t i = 0; i < hs; i++) o[i] = (o[i] + a0 * (float)v0[i]) + a1 * (float)v1[i];
  }
  if (t <= pos) {
    const int8_t* __restrict v = static_cast<const int8_t*>(kv.value(l, t)) + off;
    const float a = att[t] * kv.value_scales(l, t)[kv_head];
    for (uint32_t i = 0; i < hs; i++) o[i] = o[i] + a * (float)v[i];
  }
}
}  // namespace

struct AttentionArgs {
  const KvCache* kv;
  AttendFn attend_f32;
  uint32_t local_layer, pos, heads, kv_mul, hs, seq, kv_dim;
  uint32_t n, dim;  // positions pos..pos+n-1; their q and out rows are dim floats apart
  const float* q;
  float* att;
  float* out;
};

// Heads are split over workers; each worker runs its heads for every position in turn, so
// the att scratch of a head (seq floats) is only ever used by one worker.
static void run_attention_job(void* ctx, uint32_t worker, uint32_t workers) {
  const AttentionArgs* a = static_cast<const AttentionArgs*>(ctx);
  uint32_t h0, h1;
  split_range(a->heads, worker, workers, &h0, &h1);
  for (uint32_t h = h0; h < h1; h++) {
    float* att = a->att + (size_t)h * a->seq;
    for (uint32_t i = 0; i < a->n; i++) {
      const uint32_t pos = a->pos + i;
      const float* q = a->q + (size_t)i * a->dim + h * a->hs;
      float* out = a->out + (size_t)i * a->dim + h * a->hs;
      if (a->kv->type() == KvType::kF16) {
        attend_head_f16(*a->kv, a->local_layer, pos, h / a->kv_mul, a->hs, q, att, out);
      } else if (a->kv->type() == KvType::kI8) {
        attend_head_i8(*a->kv, a->local_layer, pos, h / a->kv_mul, a->hs, q, att, out);
      } else {
        const size_t off = (size_t)(h / a->kv_mul) * a->hs;
        const float* k = static_cast<const float*>(a->kv->key(a->local_layer, 0)) + off;
        const float* v = static_cast<const float*>(a->kv->value(a->local_layer, 0)) + off;
        a->attend_f32(q, k, v, a->kv_dim, pos + 1, a->hs, att, out);
      }
    }
  }
}

void Model::attention(uint32_t local_layer, uint32_t pos, uint32_t n, const float* q, float* out) {
  AttentionArgs args{&kv_,
                     attend_fn_,
                     local_layer,
                     pos,
                     config_.n_heads,
                     config_.n_heads / config_.n_kv_heads,
                     config_.head_size(),
                     seq_len_,
                     config_.kv_dim(),
                     n,
                     config_.dim,
                     q,
                     buf_.att,
                     out};
  // Work of all n positions: heads * sum over i of (pos + i + 1) * head_size * 2 MACs.
  const uint64_t spans = (uint64_t)n * (pos + 1) + (uint64_t)n * (n - 1) / 2;
  if ((uint64_t)config_.n_heads * spans * config_.head_size() * 2 < min_parallel_macs_) {
    run_attention_job(&args, 0, 1);
  } else {
    exec_->run(run_attention_job, &args);
  }
}

Status Model::run_layers(uint32_t begin, uint32_t end, uint32_t pos, float* x) {
  if (begin > end || begin < layer_begin_ || end > layer_end_) return Status::kNotInImage;
  if (pos >= seq_len_) return Status::kSequenceFull;
  const ModelConfig& c = config_;
  const uint32_t dim = c.dim, hidden = c.hidden_dim;
  QuantizedInput xq, hq;

  rope_table(pos, buf_.rope_cs);  // shared by every head and layer

  for (uint32_t l = begin; l < end; l++) {
    const LayerWeights& w = layers_[l - layer_begin_];
    // Attention block.
    weight_bytes_read_ += w.rms_att.bytes() + w.rms_ffn.bytes();
    rmsnorm(buf_.xb, x, w.rms_att);
    quantize(buf_.xb, dim, &xq, buf_.xq_q, buf_.xq_s, buf_.xq_sum);
    matmul(w.wq, buf_.xb, &xq, buf_.q);
    matmul(w.wk, buf_.xb, &xq, buf_.k);
    matmul(w.wv, buf_.xb, &xq, buf_.v);
    rope(buf_.rope_cs, buf_.q, buf_.k);
    kv_.store(l - layer_begin_, pos, buf_.k, buf_.v);
    attention(l - layer_begin_, pos, 1, buf_.q, buf_.xb);
    quantize(buf_.xb, dim, &xq, buf_.xq_q, buf_.xq_s, buf_.xq_sum);
    matmul(w.wo, buf_.xb, &xq, buf_.xb2);
    for (uint32_t i = 0; i < dim; i++) x[i] = x[i] + buf_.xb2[i];

    // Feed-forward block (SwiGLU).
    rmsnorm(buf_.xb, x, w.rms_ffn);
    quantize(buf_.xb, dim, &xq, buf_.xq_q, buf_.xq_s, buf_.xq_sum);
    matmul(w.w1, buf_.xb, &xq, buf_.hb);
    matmul(w.w3, buf_.xb, &xq, buf_.hb2);
    for (uint32_t i = 0; i < hidden; i++) {
      const float h1 = buf_.hb[i];
      buf_.hb[i] = (h1 * (1.0f / (1.0f + exp_f32(-h1)))) * buf_.hb2[i];
    }
    quantize(buf_.hb, hidden, &hq, buf_.hq_q, buf_.hq_s, buf_.hq_sum);
    matmul(w.w2, buf_.hb, &hq, buf_.xb);
    for (uint32_t i = 0; i < dim; i++) x[i] = x[i] + buf_.xb[i];
  }
  return Status::kOk;
}

void Model::rope_table(uint32_t pos, float* cs) const {
  for (uint32_t i = 0; i < config_.head_size() / 2; i++) {
    const float angle = (float)pos * buf_.rope_freq[i];
    sincos_f32(angle, &cs[2 * i + 1], &cs[2 * i]);
  }
}

void Model::rope(const float* cs, float* q, float* k) const {
  const uint32_t dim = config_.dim, kv_dim = config_.kv_dim(), hs = config_.head_size();
  for (uint32_t i = 0; i < dim; i += 2) {
    const float c0 = cs[(i % hs)], s0 = cs[(i % hs) + 1];
    const float q0 = q[i], q1 = q[i + 1];
    q[i] = q0 * c0 - q1 * s0;
    q[i + 1] = q0 * s0 + q1 * c0;
    if (i < kv_dim) {
      const float k0 = k[i], k1 = k[i + 1];
      k[i] = k0 * c0 - k1 * s0;
      k[i + 1] = k0 * s0 + k1 * c0;
    }
  }
}

// Quantizes rows [n][len] of src into the batch's quantized inputs (x side or hidden side).
void Model::quantize_batch(const float* src, uint32_t len, uint32_t n, bool hidden_side) {
  if (!quantized_) return;
  BatchBuffers& b = bat_;
  const uint32_t g = groups_of(len, group_);
  for (uint32_t i = 0; i < n; i++) {
    if (hidden_side) {
      quantize(src + (size_t)i * len, len, &b.hq[i], b.hq_q + (size_t)i * g * group_,
               b.hq_s + (size_t)i * g, b.hq_sum + (size_t)i * g);
    } else {
      quantize(src + (size_t)i * len, len, &b.xq[i], b.xq_q + (size_t)i * g * group_,
               b.xq_s + (size_t)i * g, b.xq_sum + (size_t)i * g);
    }
  }
}

// run_layers for n positions at once: the same steps in the same order per position; each
// matmul reads a weight row once for all n (MatmulInput::batch). Every position's K and V are
// stored before any attends, and position pos+i attends only to t <= pos+i, as token by token.
// One SwiGLU element costs about as much as this many matmul MACs (an exp_f32, a division),
// for the min_parallel_macs threshold.
constexpr uint64_t kSwigluCost = 16;

Status Model::run_layers_batch(uint32_t begin, uint32_t end, uint32_t pos, uint32_t n, float* x) {
  if (begin > end || begin < layer_begin_ || end > layer_end_) return Status::kNotInImage;
  if (n == 0 || n > prompt_batch_ || (n > 1 && bat_.x == nullptr)) return Status::kBadArgument;
  if (pos + n > seq_len_) return Status::kSequenceFull;
  if (n == 1) return run_layers(begin, end, pos, x);
  const ModelConfig& c = config_;
  const uint32_t dim = c.dim, kv_dim = c.kv_dim(), hidden = c.hidden_dim, hs = c.head_size();
  BatchBuffers& b = bat_;
  auto quantize_rows = [&](const float* src, uint32_t len, bool hidden_side) {
    quantize_batch(src, len, n, hidden_side);
  };
  for (uint32_t i = 0; i < n; i++) rope_table(pos + i, b.rope_cs + (size_t)i * hs);

  for (uint32_t l = begin; l < end; l++) {
    const uint32_t ll = l - layer_begin_;
    const LayerWeights& w = layers_[ll];
    weight_bytes_read_ += w.rms_att.bytes() + w.rms_ffn.bytes();
    for (uint32_t i = 0; i < n; i++)
      rmsnorm(b.xb + (size_t)i * dim, x + (size_t)i * dim, w.rms_att);
    quantize_rows(b.xb, dim, false);
    matmul(w.wq, b.xb, b.xq, b.q, n);
    matmul(w.wk, b.xb, b.xq, b.k, n);
    matmul(w.wv, b.xb, b.xq, b.v, n);
    for (uint32_t i = 0; i < n; i++) {
      rope(b.rope_cs + (size_t)i * hs, b.q + (size_t)i * dim, b.k + (size_t)i * kv_dim);
      kv_.store(ll, pos + i, b.k + (size_t)i * kv_dim, b.v + (size_t)i * kv_dim);
    }
    attention(ll, pos, n, b.q, b.xb);  // one dispatch for all n positions
    quantize_rows(b.xb, dim, false);
    matmul(w.wo, b.xb, b.xq, b.xb2, n);
    for (size_t i = 0; i < (size_t)n * dim; i++) x[i] = x[i] + b.xb2[i];

    for (uint32_t i = 0; i < n; i++)
      rmsnorm(b.xb + (size_t)i * dim, x + (size_t)i * dim, w.rms_ffn);
    quantize_rows(b.xb, dim, false);
    matmul(w.w1, b.xb, b.xq, b.hb, n);
    matmul(w.w3, b.xb, b.xq, b.hb2, n);
    // SwiGLU over all n positions, split over the workers (elementwise: same bits).
    auto swiglu = [&](uint32_t i0, uint32_t i1) {
      for (uint32_t i = i0; i < i1; i++) {
        const float h1 = b.hb[i];
        b.hb[i] = (h1 * (1.0f / (1.0f + exp_f32(-h1)))) * b.hb2[i];
      }
    };
    if ((uint64_t)n * hidden * kSwigluCost < min_parallel_macs_) {
      swiglu(0, n * hidden);
    } else {
      parallel_for(exec_, n * hidden, 64, swiglu);
    }
    quantize_rows(b.hb, hidden, true);
    matmul(w.w2, b.hb, b.hq, b.xb, n);
    for (size_t i = 0; i < (size_t)n * dim; i++) x[i] = x[i] + b.xb[i];
  }
  return Status::kOk;
}

Status Model::head(const float* x, uint32_t r0, uint32_t r1, float* logits) {
  const Status s = final_norm(x, buf_.xb);
  return s == Status::kOk ? classify(buf_.xb, r0, r1, logits + r0) : s;
}

Status Model::final_norm(const float* x, float* xn) {
  if (!has_classifier_) return Status::kNotInImage;
  rmsnorm(xn, x, rms_final_);
  weight_bytes_read_ += rms_final_.bytes();
  return Status::kOk;
}

Status Model::classify(const float* xn, uint32_t r0, uint32_t r1, float* out) {
  if (cls_begin_ == cls_end_) return Status::kNotInImage;
  if (r0 > r1 || r0 < cls_begin_ || r1 > cls_held_end_) return Status::kBadArgument;
  if (r0 == r1) return Status::kOk;
  QuantizedInput xq;
  quantize(xn, config_.dim, &xq, buf_.xq_q, buf_.xq_s, buf_.xq_sum);
  // Rows [r0, r1) as their own matrix view: every row's dot product is the same whichever
  // board, slice or kernel batch computes it, so slices merge into the monolithic logits.
  TensorView slice = classifier_;
  slice.data = classifier_.row(r0 - cls_begin_);
  slice.rows = r1 - r0;
  matmul(slice, xn, &xq, out);
  return Status::kOk;
}

// head() for n positions, the classifier read once for all: bit-identical to n head() calls.
Status Model::head_batch(const float* x, uint32_t n, float* logits) {
  if (!has_classifier_) return Status::kNotInImage;
  if (n == 0 || n > prompt_batch_ || (n > 1 && bat_.xb == nullptr)) return Status::kBadArgument;
  if (n == 1) return head(x, 0, config_.vocab_size, logits);
  const uint32_t dim = config_.dim;
  for (uint32_t i = 0; i < n; i++)
    rmsnorm(bat_.xb + (size_t)i * dim, x + (size_t)i * dim, rms_final_);
  weight_bytes_read_ += rms_final_.bytes();
  quantize_batch(bat_.xb, dim, n, false);
  matmul(classifier_, bat_.xb, bat_.xq, logits, n);
  return Status::kOk;
}

}  // namespace llmwire
