#include "platform/host/host_memory.h"

#include <sys/resource.h>
#include <unistd.h>

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

}  // namespace llmwire
