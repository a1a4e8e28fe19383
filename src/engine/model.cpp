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
                   Buffers* t) {
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
  t->logits = info.has(kFlagHasClassifier) ? big->take<float>(c.vocab_size) : nullptr;
  t->kv = big->take<uint8_t>(KvCache::bytes(kv, layers, seq, c.kv_dim()));
}

MemoryNeeds Model::memory_needs(const ImageInfo& info, const RunOptions& opts) {
  Arena fast, big;
  Buffers unused;
  layout(info, opts, &fast, &big, &unused);
  return MemoryNeeds{fast.used(), big.used()};
}

Status Model::init(const Image& image, const RunOptions& opts, Arena* fast, Arena* big,
                   Executor* executor) {
  const ImageInfo& info = image.info();
  if (image.data() == nullptr || executor == nullptr || !fast || !big) return Status::kBadArgument;
  if (opts.seq_len > info.config.seq_len) return Status::kBadArgument;
  if (fast->counting() || big->counting()) return Status::kArenaTooSmall;
  layout(info, opts, fast, big, &buf_);
  if (fast->overflowed() || big->overflowed()) return Status::kArenaTooSmall;
  image_ = &image;
  exec_ = executor;
  matmul_fn_ = opts.reference_kernels ? matmul_reference : matmul_optimized;
  config_ = info.config;
  group_ = info.group_size;
  quantized_ = info.weight_type != WeightType::kF32;
  seq_len_ = opts.seq_len ? opts.seq_len : config_.seq_len;
  layer_begin_ = info.layer_begin;
  layer_end_ = info.layer_end;
  norm_eps_ = info.norm_eps;
  min_parallel_macs_ = opts.min_parallel_macs;
  layers_ = buf_.layers;
  kv_.init(opts.kv_override ? opts.kv_type : info.kv_type, layer_end_ - layer_begin_, seq_len_,
           config_.kv_dim(), buf_.kv);

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
  if (has_classifier_) {
    if (!image.find(TensorKind::kRmsFinal, kNoLayer, &rms_final_)) return Status::kMissingTensor;
    if (config_.shared_classifier) {
      if (!has_embedding_) return Status::kMissingTensor;
      classifier_ = embedding_;
    } else if (!image.find(TensorKind::kClassifier, kNoLayer, &classifier_)) {
      return Status::kMissingTensor;
    }
  }
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
  quantize_input(x, n, group_, q, s, qs);
  out->q = q;
  out->scale = s;
  out->qsum = qs;
  out->groups = groups_of(n, group_);
}

namespace {
struct MatmulJob {
  MatmulFn fn;
  const TensorView* w;
  uint32_t group;
  MatmulInput in;
  float* out;
};
void run_matmul_job(void* ctx, uint32_t worker, uint32_t workers) {
  const MatmulJob* job = static_cast<const MatmulJob*>(ctx);
  uint32_t r0, r1;
  split_range(job->w->rows, worker, workers, &r0, &r1);
  if (r0 < r1) job->fn(*job->w, job->group, job->in, job->out, job->w->rows, r0, r1);
}
}  // namespace

void Model::matmul(const TensorView& w, const float* x_f32, const QuantizedInput* xq, float* out) {
  MatmulJob job{matmul_fn_, &w, group_, MatmulInput{}, out};
  job.in.x = x_f32;
  job.in.x_stride = w.cols;
  job.in.xq = xq;
  job.in.batch = 1;
  // Small matrices run on this core alone (RunOptions::min_parallel_macs). Either way each
  // row is computed whole by one worker, so the result is the same.
  if ((uint64_t)w.rows * w.cols < min_parallel_macs_) {
    run_matmul_job(&job, 0, 1);
  } else {
    exec_->run(run_matmul_job, &job);
  }
  weight_bytes_read_ += w.bytes();
}

namespace {
template <typename T>
float kv_elem(const void* p, uint32_t i);
template <>
inline float kv_elem<float>(const void* p, uint32_t i) {
  return static_cast<const float*>(p)[i];
}
template <>
inline float kv_elem<uint16_t>(const void* p, uint32_t i) {
  return half_to_float(static_cast<const uint16_t*>(p)[i]);
}

// One head of causal attention at position `pos`, in the order of docs/NUMERICS.md.
template <typename T>
void attend_head(const KvCache& kv, uint32_t l, uint32_t pos, uint32_t kv_head, uint32_t hs,
                 const float* q, float* att, float* out) {
  const float sqrt_hs = sqrt_f32((float)hs);
  const uint32_t off = kv_head * hs;
  for (uint32_t t = 0; t <= pos; t++) {
    const void* k = kv.key(l, t);
    float score = 0.0f;
    for (uint32_t i = 0; i < hs; i++) score = score + q[i] * kv_elem<T>(k, off + i);
    att[t] = score / sqrt_hs;  // a division, as llama2.c does
  }
  softmax(att, pos + 1);
  for (uint32_t i = 0; i < hs; i++) out[i] = 0.0f;
  for (uint32_t t = 0; t <= pos; t++) {
    const void* v = kv.value(l, t);
    const float a = att[t];
    for (uint32_t i = 0; i < hs; i++) out[i] = out[i] + a * kv_elem<T>(v, off + i);
  }
}
}  // namespace

struct AttentionArgs {
  const KvCache* kv;
  uint32_t local_layer, pos, heads, kv_mul, hs, seq;
  const float* q;
  float* att;
  float* out;
};

static void run_attention_job(void* ctx, uint32_t worker, uint32_t workers) {
  const AttentionArgs* a = static_cast<const AttentionArgs*>(ctx);
  uint32_t h0, h1;
  split_range(a->heads, worker, workers, &h0, &h1);
  for (uint32_t h = h0; h < h1; h++) {
    const float* q = a->q + h * a->hs;
    float* att = a->att + (size_t)h * a->seq;
    float* out = a->out + h * a->hs;
    if (a->kv->type() == KvType::kF16) {
      attend_head<uint16_t>(*a->kv, a->local_layer, a->pos, h / a->kv_mul, a->hs, q, att, out);
    } else {
      attend_head<float>(*a->kv, a->local_layer, a->pos, h / a->kv_mul, a->hs, q, att, out);
    }
  }
}

void Model::attention(uint32_t local_layer, uint32_t pos) {
  AttentionArgs args{&kv_,
                     local_layer,
                     pos,
                     config_.n_heads,
                     config_.n_heads / config_.n_kv_heads,
                     config_.head_size(),
                     seq_len_,
                     buf_.q,
                     buf_.att,
                     buf_.xb};
  if ((uint64_t)config_.n_heads * (pos + 1) * config_.head_size() * 2 < min_parallel_macs_) {
    run_attention_job(&args, 0, 1);
  } else {
    exec_->run(run_attention_job, &args);
  }
}

Status Model::run_layers(uint32_t begin, uint32_t end, uint32_t pos, float* x) {
  if (begin > end || begin < layer_begin_ || end > layer_end_) return Status::kNotInImage;
  if (pos >= seq_len_) return Status::kSequenceFull;
  const ModelConfig& c = config_;
  const uint32_t dim = c.dim, kv_dim = c.kv_dim(), hidden = c.hidden_dim, hs = c.head_size();
  QuantizedInput xq, hq;

  // RoPE rotation for this position, shared by every head and layer.
  for (uint32_t i = 0; i < hs / 2; i++) {
    const float angle = (float)pos * buf_.rope_freq[i];
    sincos_f32(angle, &buf_.rope_cs[2 * i + 1], &buf_.rope_cs[2 * i]);
  }

  for (uint32_t l = begin; l < end; l++) {
    const LayerWeights& w = layers_[l - layer_begin_];
    // Attention block.
    weight_bytes_read_ += w.rms_att.bytes() + w.rms_ffn.bytes();
    rmsnorm(buf_.xb, x, w.rms_att);
    quantize(buf_.xb, dim, &xq, buf_.xq_q, buf_.xq_s, buf_.xq_sum);
    matmul(w.wq, buf_.xb, &xq, buf_.q);
    matmul(w.wk, buf_.xb, &xq, buf_.k);
    matmul(w.wv, buf_.xb, &xq, buf_.v);
    for (uint32_t i = 0; i < dim; i += 2) {
      const float c0 = buf_.rope_cs[(i % hs)], s0 = buf_.rope_cs[(i % hs) + 1];
      const float q0 = buf_.q[i], q1 = buf_.q[i + 1];
      buf_.q[i] = q0 * c0 - q1 * s0;
      buf_.q[i + 1] = q0 * s0 + q1 * c0;
      if (i < kv_dim) {
        const float k0 = buf_.k[i], k1 = buf_.k[i + 1];
        buf_.k[i] = k0 * c0 - k1 * s0;
        buf_.k[i + 1] = k0 * s0 + k1 * c0;
      }
    }
    kv_.store(l - layer_begin_, pos, buf_.k, buf_.v);
    attention(l - layer_begin_, pos);
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

Status Model::head(const float* x, uint32_t r0, uint32_t r1, float* logits) {
  if (!has_classifier_) return Status::kNotInImage;
  if (r0 > r1 || r1 > config_.vocab_size) return Status::kBadArgument;
  rmsnorm(buf_.xb, x, rms_final_);
  weight_bytes_read_ += rms_final_.bytes();
  QuantizedInput xq;
  quantize(buf_.xb, config_.dim, &xq, buf_.xq_q, buf_.xq_s, buf_.xq_sum);
  // The classifier slice [r0, r1) as its own matrix view, so rows can live on several boards.
  TensorView slice = classifier_;
  slice.data = classifier_.row(r0);
  slice.rows = r1 - r0;
  matmul(slice, buf_.xb, &xq, logits + r0);
  return Status::kOk;
}

}  // namespace llmwire
