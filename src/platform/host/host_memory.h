// How much memory this process may allocate: physical RAM, capped by RLIMIT_AS / RLIMIT_DATA.
// Checked before sizing the arena, so a model too long for this machine is refused with a
// sentence instead of aborting in the allocator.
#pragma once

#include <stdint.h>

#include <string>

#include "engine/image.h"
#include "engine/model.h"

namespace llmwire {

uint64_t host_memory_limit();

// The model's buffers plus the image copy must fit what this process may allocate; otherwise
// says how long a context would fit ("needs N MB ... use --seq K").
bool check_host_memory(const std::string& path, const ImageInfo& info, const RunOptions& opts,
                       size_t image_bytes, std::string* err, std::string* hint);

}  // namespace llmwire
