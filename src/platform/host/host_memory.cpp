#include "platform/host/host_memory.h"

#include <sys/resource.h>
#include <unistd.h>

#include "engine/model.h"

namespace llmwire {

uint64_t host_memory_limit() {
  uint64_t limit = UINT64_MAX;
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  if (pages > 0 && page > 0) limit = (uint64_t)pages * (uint64_t)page;
  const int limits[] = {RLIMIT_AS, RLIMIT_DATA};
  for (const int which : limits) {
    struct rlimit r;
    if (getrlimit(which, &r) == 0 && r.rlim_cur != RLIM_INFINITY && (uint64_t)r.rlim_cur < limit)
      limit = (uint64_t)r.rlim_cur;
  }
  return limit;
}

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
  *hint = lo > 0 ? "use --seq " + std::to_string(lo) + " or shorter (or --kv f16 / --kv i8)"
                 : "the model does not fit this machine's memory at any sequence length";
  return false;
}

}  // namespace llmwire
