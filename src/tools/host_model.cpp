#include "tools/host_model.h"

#include "platform/host/host_memory.h"

namespace llmwire {

std::string describe_image_error(const std::string& path, Status s, const Image& image) {
  std::string msg = path + ": " + status_message(s);
  if (image.failed_tensor() >= 0)
    msg += " (tensor table entry " + std::to_string(image.failed_tensor()) + ")";
  return msg;
}

namespace {

// The arena (KV cache, activations, logits) plus the image copy must fit what this process may
// allocate; otherwise say how long a context would fit.
bool check_host_memory(const std::string& path, const ImageInfo& info, const RunOptions& opts,
                       size_t image_bytes, std::string* err, std::string* hint) {
  const uint64_t limit = host_memory_limit();
  const uint64_t reserve = 64ull << 20;  // code, stacks, threads
  const uint64_t have = limit > image_bytes + reserve ? limit - image_bytes - reserve : 0;
  const MemoryNeeds needs = Model::memory_needs(info, opts);
  const uint64_t need = needs.fast + needs.big;
  if (need <= have) return true;
  const uint32_t seq = opts.seq_len ? opts.seq_len : info.config.seq_len;
  uint32_t lo = 0, hi = seq;  // longest seq whose arena fits
  while (lo < hi) {
    RunOptions o = opts;
    o.seq_len = lo + (hi - lo + 1) / 2;
    const MemoryNeeds n = Model::memory_needs(info, o);
    if (n.fast + n.big <= have) {
      lo = o.seq_len;
    } else {
      hi = o.seq_len - 1;
    }
  }
  *err = path + " needs " + std::to_string((need + (1u << 20) - 1) >> 20) + " MB of RAM at seq " +
         std::to_string(seq) + " (KV cache and activations), more than the " +
         std::to_string(have >> 20) + " MB this process can allocate";
  *hint = lo > 0 ? "use --seq " + std::to_string(lo) + " or shorter (or --kv f16)"
                 : "the model does not fit this machine's memory at any sequence length";
  return false;
}

}  // namespace

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
  fast_.assign(region_bytes_for(need.fast), 0);
  big_.assign(region_bytes_for(need.big), 0);
  exec_ = std::make_unique<ThreadExecutor>(threads);
  Arena fast(MemoryRegion{fast_.data(), fast_.size()});
  Arena big(MemoryRegion{big_.data(), big_.size()});
  s = model_.init(image_, opts, &fast, &big, exec_.get());
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

}  // namespace llmwire
