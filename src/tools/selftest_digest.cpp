#include "tools/selftest_digest.h"

#include <stdio.h>

#include <memory>
#include <vector>

#include "engine/image_header.h"
#include "platform/host/host_clock.h"
#include "platform/host/mapped_file.h"
#include "runtime/head_console.h"
#include "runtime/stage.h"

namespace llmwire {

bool compute_selftest_digest(const Image& whole, const RunOptions& run, uint32_t* digest,
                             std::string* err) {
  const ImageInfo& info = whole.info();
  if (info.stage_count != 1 || !info.has(kFlagHasTokenizer)) {
    *err = "the selftest digest needs a whole-model image with a tokenizer";
    return false;
  }
  StageOptions opts;
  opts.run = run;
  opts.verify_payload = false;  // the caller opened (and checked) the image
  const MemoryNeeds need = Stage::memory_needs(info, opts);
  std::vector<uint8_t> fast(region_bytes_for(need.fast)), big(region_bytes_for(need.big));
  HostClock clock;
  SerialExecutor executor;  // the digest does not depend on the core count (tested)
  Platform p;
  p.image = whole.data();
  p.image_len = whole.size();
  p.clock = &clock;
  p.executor = &executor;
  p.fast = MemoryRegion{fast.data(), fast.size()};
  p.big = MemoryRegion{big.data(), big.size()};
  p.name = "host";
  auto stage = std::make_unique<Stage>();
  char msg[400];
  if (stage->boot(p, opts, msg, sizeof msg) != Status::kOk) {
    *err = std::string("selftest digest: ") + msg;
    return false;
  }
  auto console = std::make_unique<HeadConsole>();
  console->init(
      stage.get(), [](void*, const char*, size_t) {}, nullptr);
  StoryResult r;
  const Status s = console->selftest(&r, msg, sizeof msg);
  if (s == Status::kPromptTooLong) {  // a context too short for the story: nothing to compare
    *digest = 0;
    return true;
  }
  if (s != Status::kOk) {
    *err = std::string("selftest digest: ") + msg;
    return false;
  }
  *digest = r.digest;
  return true;
}

bool stamp_selftest_digest(const std::string& path, uint32_t* digest, std::string* err) {
  ImageInfo info;
  {
    MappedFile file;
    if (!file.open(path, err)) return false;
    Image image;
    const Status s = image.open(file.data(), file.size(), true);
    if (s != Status::kOk) {
      *err = path + ": " + status_message(s);
      return false;
    }
    *digest = 0;
    if (!image.info().has(kFlagHasTokenizer) || image.info().stage_count != 1) return true;
    if (!compute_selftest_digest(image, RunOptions{}, digest, err)) return false;
    info = image.info();
  }
  info.selftest_digest = *digest;
  uint8_t header[kHeaderSize];
  encode_header(info, header);
  FILE* f = fopen(path.c_str(), "r+b");
  if (!f || fwrite(header, 1, sizeof header, f) != sizeof header) {
    if (f) fclose(f);
    *err = "cannot write the header of " + path;
    return false;
  }
  if (fclose(f) != 0) {
    *err = "cannot write the header of " + path;
    return false;
  }
  return true;
}

}  // namespace llmwire
