// Host runners for one ring stage: a worker loop, or the head generating a story. Used by
// `llmwire stage` (a real serial port, or the simulator's pipes) and by in-process tests.
#pragma once

#include <stdint.h>

#include <atomic>
#include <string>
#include <vector>

#include "engine/generator.h"
#include "link/byte_link.h"
#include "link/messages.h"
#include "pipeline/head.h"
#include "tools/host_model.h"

namespace llmwire {

// Runs a worker stage on `link` until `stop` is set or the link closes.
// Returns false with *err if the image cannot serve as a worker.
bool run_worker(HostModel& model, ByteLink* link, uint32_t boot_id, const std::atomic<bool>* stop,
                std::string* err, uint16_t protocol_version = kProtocolVersion);

struct HeadRunOptions {
  std::string prompt;
  uint32_t steps = 256;
  float temperature = 1.0f, topp = 0.9f;
  uint64_t seed = 1;
  HeadOptions head;
};

struct HeadRunResult {
  std::string text;
  std::vector<int32_t> tokens;
  GenerateStats gen;
  HeadCounters counters;
  FrameCounters link;
  std::vector<StageStats> stages;  // workers, ring order (stage 1 first)
};

// Discovers the ring, generates, then collects every stage's statistics.
// emit (optional) receives text as it is generated.
bool run_head(HostModel& model, ByteLink* link, const HeadRunOptions& opts, HeadRunResult* out,
              void (*emit)(void* ctx, const char* s, size_t n), void* emit_ctx, std::string* err,
              std::string* hint);

}  // namespace llmwire
