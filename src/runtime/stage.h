// One stage of a ring, brought up from its image on any platform: the same code runs in
// `llmwire stage` / `sim` on a PC, on the emulated rv32 boards in CI and on the ESP32-S3.
// Boot validates the image, learns the role from it (stage 0 is the head), places every
// buffer in the platform's memory regions, checks the tokenizer and self-tests the kernel.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "engine/model.h"
#include "engine/sampler.h"
#include "engine/tokenizer.h"
#include "pipeline/head.h"
#include "pipeline/worker.h"
#include "platform/platform.h"
#include "runtime/placement.h"
#include "runtime/selftest.h"

namespace llmwire {

struct StageOptions {
  RunOptions run;                               // seq_len, KV type, kernel choice
  HeadOptions head;                             // head: window, timeouts (boot_id: platform's)
  uint16_t protocol_version = kMessageVersion;  // worker: what HELLO announces (tests)
  bool verify_payload = true;                   // CRC over the whole image at boot
  uint32_t max_prompt_bytes = 1024;             // head: longest console line / prompt
  // Head: the longest guess /spec may verify per pass (speculative decoding), sizing a logits
  // buffer of (speculate + 1) x vocab floats in the big region. It saves passes on a
  // one-board model whose run.prompt_batch exceeds it; a ring verifies position by position.
  uint32_t speculate = 0;
  bool place_weights = true;  // copy hot weights into spare RAM when Platform::speeds says so
};

enum class Role { kHead, kWorker };

class Stage {
 public:
  // What boot() takes from each region for this image: the model's buffers plus the role's
  // (head: token history, sampler, frame buffer; worker: frame buffer) and the self-test.
  static MemoryNeeds memory_needs(const ImageInfo& info, const StageOptions& opts);

  // Brings the stage up. On failure returns the status and writes a sentence (what is wrong,
  // what to do) into msg; the stage is then unusable but the platform can report and retry.
  Status boot(const Platform& platform, const StageOptions& opts, char* msg, size_t cap);

  Role role() const { return role_; }
  bool is_head() const { return role_ == Role::kHead; }
  Model& model() { return model_; }
  const Image& image() const { return image_; }
  const Tokenizer& tokenizer() const { return tokenizer_; }
  bool has_tokenizer() const { return has_tokenizer_; }
  const SelfTestResult& selftest() const { return selftest_; }
  const Platform& platform() const { return platform_; }
  MemoryNeeds memory_used() const { return used_; }
  // Weight tensors copied into RAM at boot (runtime/placement.h), verified before use.
  const PlacementTotals& placement() const { return placement_; }

  // Head only (after boot): the ring head, sampler and token buffer for generate().
  RingHead& head() { return head_; }
  Sampler& sampler() { return sampler_; }
  int32_t* tokens() { return tokens_; }
  size_t tokens_capacity() const { return tokens_cap_; }
  // Speculation's verification logits, (speculate_max() + 1) x vocab floats (null if 0).
  float* spec_logits() { return spec_logits_; }
  uint32_t speculate_max() const { return speculate_max_; }

  // Worker only: serves the ring until the link is gone or stop(ctx) returns true.
  void serve(bool (*stop)(void* ctx), void* ctx);
  Worker& worker() { return worker_; }

  // "head: layers 6-7 of 8 + classifier, model 1a2b3c4d, seq 256" style line.
  void describe(char* buf, size_t cap) const;

 private:
  void log(const char* line) const;
  Status place_weights(const MemoryNeeds& need, Arena* fast, Arena* big, char* msg, size_t cap);

  Platform platform_;
  Role role_ = Role::kWorker;
  Image image_;
  Model model_;
  Tokenizer tokenizer_;
  bool has_tokenizer_ = false;
  SelfTestResult selftest_;
  MemoryNeeds used_;
  PlacementTotals placement_;
  RingHead head_;
  Sampler sampler_;
  int32_t* tokens_ = nullptr;
  size_t tokens_cap_ = 0;
  float* spec_logits_ = nullptr;
  uint32_t speculate_max_ = 0;
  Worker worker_;
};

}  // namespace llmwire
