// How much memory this process may allocate: physical RAM, capped by RLIMIT_AS / RLIMIT_DATA.
// Checked before sizing the arena, so a model too long for this machine is refused with a
// sentence instead of aborting in the allocator.
#pragma once

#include <stdint.h>

namespace llmwire {

uint64_t host_memory_limit();

}  // namespace llmwire
