// The host's implementation of the platform contract (src/platform/platform.h) for one ring
// stage: the image file mapped, the two memory regions allocated once, a thread pool, the
// steady clock and a console on stdin/stdout. `llmwire stage`, the simulator's stage
// processes and the in-process ring tests boot the portable runtime through it.
#pragma once

#include <stdio.h>

#include <memory>
#include <string>
#include <vector>

#include "platform/host/host_clock.h"
#include "platform/host/mapped_file.h"
#include "platform/host/thread_executor.h"
#include "platform/platform.h"
#include "runtime/stage.h"

namespace llmwire {

// The user's console on a pair of file descriptors (stdin/stdout by default).
class FdConsole final : public Console {
 public:
  explicit FdConsole(int in = 0, int out = 1) : in_(in), out_(out) {}
  size_t read(char* buf, size_t max, uint32_t timeout_ms) override;
  void write(const char* s, size_t len) override;
  bool ok() const override { return !eof_; }

 private:
  int in_, out_;
  bool eof_ = false;
};

class HostStage {
 public:
  // Maps the image and boots the runtime on it. link may be null for a one-board model.
  bool boot(const std::string& path, ByteLink* link, const StageOptions& opts, uint32_t threads,
            uint32_t boot_id, Console* console, std::string* err, std::string* hint);

  Stage& stage() { return stage_; }
  Clock& clock() { return clock_; }

 private:
  MappedFile file_;
  std::vector<uint8_t> fast_, big_;
  std::unique_ptr<ThreadExecutor> exec_;
  HostClock clock_;
  Stage stage_;
};

}  // namespace llmwire
