// libFuzzer target: the image reader must reject or accept any bytes without crashing, and
// an accepted image must be safe to use (tokenizer lookups, a forward pass).
#include <stdint.h>
#include <string.h>

#include <vector>

#include "engine/image.h"
#include "engine/model.h"
#include "engine/tokenizer.h"

using namespace llmwire;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Mapped images are page aligned; give the reader an aligned copy.
  std::vector<uint32_t> buf((size + 3) / 4 + 1);
  if (size) memcpy(buf.data(), data, size);
  const uint8_t* bytes = reinterpret_cast<const uint8_t*>(buf.data());
  Image image;
  // Skip the payload CRC so the fuzzer can reach the structural checks behind it.
  if (image.open(bytes, size, false) != Status::kOk) return 0;
  const ImageInfo& info = image.info();
  if (info.has(kFlagHasTokenizer)) {
    Tokenizer tok;
    if (tok.init(image.tokenizer()) == Status::kOk) {
      int32_t ids[32];
      size_t n = 0;
      tok.encode("Once upon a time", 16, true, false, ids, 32, &n);
      for (size_t i = 0; i + 1 < n; i++) tok.decode(ids[i], ids[i + 1]);
    }
  }
  // Run one position through whatever the image holds, if it is small.
  RunOptions opts;
  opts.seq_len = 2;
  const MemoryNeeds need = Model::memory_needs(info, opts);
  if (need.fast + need.big > (64u << 20)) return 0;
  std::vector<uint8_t> fast_mem(region_bytes_for(need.fast)), big_mem(region_bytes_for(need.big));
  Arena fast(MemoryRegion{fast_mem.data(), fast_mem.size()});
  Arena big(MemoryRegion{big_mem.data(), big_mem.size()});
  SerialExecutor exec;
  Model model;
  if (model.init(image, opts, &fast, &big, &exec) != Status::kOk) return 0;
  std::vector<float> x(info.config.dim, 0.5f);
  if (info.has(kFlagHasEmbedding)) model.embed(0, x.data());
  model.run_layers(info.layer_begin, info.layer_end, 0, x.data());
  if (info.has(kFlagHasClassifier)) model.head(x.data(), 0, info.config.vocab_size, model.logits());
  return 0;
}
