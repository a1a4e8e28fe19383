// A whole image loaded on the host: mapped file, validated image, arena, threads, model and
// tokenizer, with errors turned into sentences for the CLI.
#pragma once

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "engine/generator.h"
#include "engine/model.h"
#include "engine/tokenizer.h"
#include "platform/host/mapped_file.h"
#include "platform/host/thread_executor.h"

namespace llmwire {

class HostModel final : public Forwarder {
 public:
  // Opens and validates the image (payload CRC included) and sets up the model.
  bool load(const std::string& path, const RunOptions& opts, uint32_t threads, std::string* err,
            std::string* hint);

  Status forward(int32_t token, uint32_t pos, bool need_logits, const float** logits) override;
  // Whole chunks of RunOptions::prompt_batch positions through the layers at once.
  Status feed_prompt(const int32_t* tokens, uint32_t n) override;
  // Up to RunOptions::prompt_batch positions through the layers and the classifier at once.
  Status forward_batch(const int32_t* tokens, uint32_t pos, uint32_t n, float* logits,
                       uint32_t vocab) override;
  uint32_t max_batch() const override { return model_.prompt_batch(); }
  uint32_t seq_len() const override { return model_.seq_len(); }

  Model& model() { return model_; }
  const Image& image() const { return image_; }
  const Tokenizer& tokenizer() const { return tokenizer_; }
  bool has_tokenizer() const { return has_tokenizer_; }

 private:
  MappedFile file_;
  Image image_;
  // The model's two memory regions, one allocation each. calloc, not a zero-filled vector: a
  // large calloc is fresh zero pages, so KV-cache pages no position has reached yet are not
  // resident (peak RSS of a short run: about 3.5 MB less for stories15M).
  struct Region {
    void operator()(uint8_t* p) const { std::free(p); }
  };
  std::unique_ptr<uint8_t, Region> fast_, big_;
  size_t fast_bytes_ = 0, big_bytes_ = 0;
  std::unique_ptr<ThreadExecutor> exec_;
  Model model_;
  Tokenizer tokenizer_;
  bool has_tokenizer_ = false;
};

// "image.bin: image payload checksum mismatch (data corrupted)" style text for a Status.
std::string describe_image_error(const std::string& path, Status s, const Image& image);

}  // namespace llmwire
