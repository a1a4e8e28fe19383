#include "tools/host_model.h"

#include <cstdlib>

#include "platform/host/host_memory.h"

namespace llmwire {

std::string describe_image_error(const std::string& path, Status s, const Image& image) {
  std::string msg = path + ": " + status_message(s);
  if (image.failed_tensor() >= 0)
    msg += " (tensor table entry " + std::to_string(image.failed_tensor()) + ")";
  return msg;
}

bool HostModel::load(const std::string& path, const RunOptions& opts, uint32_t threads,
                     std::string* err, std::string* hint) {
  if (!file_.open(path, err)) {
    *hint = "check the path";
    return false;
  }
  Status s = image_.open(file_.data(), file_.size(), true);
  if (s != Status::kOk) {
    *err = describe_image_error(path, s, image_);
    *hint = status_hint(s);
    return false;
  }
  const ImageInfo& info = image_.info();
  if (opts.seq_len > info.config.seq_len) {
    *err = "--seq " + std::to_string(opts.seq_len) +
           " is longer than the image's sequence length " + std::to_string(info.config.seq_len);
    *hint = "use --seq up to " + std::to_string(info.config.seq_len) +
            " or re-convert with a longer --seq";
    return false;
  }
  if (!check_host_memory(path, info, opts, file_.size(), err, hint)) return false;
  const MemoryNeeds need = Model::memory_needs(info, opts);
  fast_bytes_ = region_bytes_for(need.fast);
  big_bytes_ = region_bytes_for(need.big);
  fast_.reset(static_cast<uint8_t*>(std::calloc(fast_bytes_ ? fast_bytes_ : 1, 1)));
  big_.reset(static_cast<uint8_t*>(std::calloc(big_bytes_ ? big_bytes_ : 1, 1)));
  if (!fast_ || !big_) {
    *err = "cannot allocate " + std::to_string(fast_bytes_ + big_bytes_) + " bytes for the model";
    *hint = "free some memory, or use a shorter --seq";
    return false;
  }
  exec_ = std::make_unique<ThreadExecutor>(threads);
  // LLMWIRE_KERNEL=<name> forces a kernel (tests, benchmarks, bug reports).
  RunOptions run = opts;
  const char* forced = std::getenv("LLMWIRE_KERNEL");
  if (run.kernel == nullptr && forced != nullptr && forced[0] != '\0') run.kernel = forced;
  if (run.kernel != nullptr && !run.reference_kernels && find_kernel(run.kernel) == nullptr) {
    *err = std::string("kernel '") + run.kernel + "' is not built in or this CPU cannot run it";
    *hint = "kernels here:";
    uint32_t n = 0;
    const Kernel* table = kernel_table(&n);
    for (uint32_t i = 0; i < n; i++) {
      if (table[i].available()) *hint += std::string(" ") + table[i].name;
    }
    return false;
  }
  Arena fast(MemoryRegion{fast_.get(), fast_bytes_});
  Arena big(MemoryRegion{big_.get(), big_bytes_});
  s = model_.init(image_, run, &fast, &big, exec_.get());
  if (s != Status::kOk) {
    *err = path + ": " + status_message(s);
    *hint = status_hint(s);
    return false;
  }
  if (info.has(kFlagHasTokenizer)) {
    s = tokenizer_.init(image_.tokenizer());
    if (s != Status::kOk) {
      *err = path + ": " + status_message(s);
      *hint = status_hint(s);
      return false;
    }
    has_tokenizer_ = true;
  }
  return true;
}

Status HostModel::forward(int32_t token, uint32_t pos, bool need_logits, const float** logits) {
  Model& m = model_;
  Status s = m.embed(token, m.x());
  if (s == Status::kOk) s = m.run_layers(m.info().layer_begin, m.info().layer_end, pos, m.x());
  if (s == Status::kOk && need_logits) {
    s = m.head(m.x(), 0, m.config().vocab_size, m.logits());
    if (logits) *logits = m.logits();
  }
  return s;
}

Status HostModel::feed_prompt(const int32_t* tokens, uint32_t n) {
  Model& m = model_;
  const uint32_t chunk = m.prompt_batch();
  if (chunk <= 1) return Forwarder::feed_prompt(tokens, n);
  const uint32_t dim = m.config().dim;
  for (uint32_t p = 0; p < n; p += chunk) {
    const uint32_t k = n - p < chunk ? n - p : chunk;
    for (uint32_t i = 0; i < k; i++) {
      const Status s = m.embed(tokens[p + i], m.batch_x() + (size_t)i * dim);
      if (s != Status::kOk) return s;
    }
    const Status s =
        m.run_layers_batch(m.info().layer_begin, m.info().layer_end, p, k, m.batch_x());
    if (s != Status::kOk) return s;
  }
  return Status::kOk;
}

Status HostModel::forward_batch(const int32_t* tokens, uint32_t pos, uint32_t n, float* logits,
                                uint32_t vocab) {
  Model& m = model_;
  if (vocab != m.config().vocab_size || n > m.prompt_batch()) return Status::kBadArgument;
  if (n == 1) return Forwarder::forward_batch(tokens, pos, n, logits, vocab);
  const uint32_t dim = m.config().dim;
  for (uint32_t i = 0; i < n; i++) {
    const Status s = m.embed(tokens[i], m.batch_x() + (size_t)i * dim);
    if (s != Status::kOk) return s;
  }
  const Status s =
      m.run_layers_batch(m.info().layer_begin, m.info().layer_end, pos, n, m.batch_x());
  if (s != Status::kOk) return s;
  return m.head_batch(m.batch_x(), n, logits);
}

}  // namespace llmwire
