#include "platform/host/host_stage.h"

#include <errno.h>
#include <poll.h>
#include <unistd.h>

#include "platform/host/host_memory.h"

namespace llmwire {
namespace {

void log_stderr(void*, const char* line) {
  fprintf(stderr, "%s\n", line);
}

}  // namespace

size_t FdConsole::read(char* buf, size_t max, uint32_t timeout_ms) {
  if (eof_) return 0;
  struct pollfd p = {in_, POLLIN, 0};
  const int r = poll(&p, 1, (int)timeout_ms);
  if (r <= 0) return 0;
  const ssize_t n = ::read(in_, buf, max);
  if (n <= 0) {
    if (n == 0 || (errno != EINTR && errno != EAGAIN)) eof_ = true;
    return 0;
  }
  return (size_t)n;
}

void FdConsole::write(const char* s, size_t len) {
  while (len > 0) {
    const ssize_t n = ::write(out_, s, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    s += n;
    len -= (size_t)n;
  }
}

bool HostStage::boot(const std::string& path, ByteLink* link, const StageOptions& opts,
                     uint32_t threads, uint32_t boot_id, Console* console, std::string* err,
                     std::string* hint) {
  if (!file_.open(path, err)) {
    *hint = "check the path";
    return false;
  }
  // Size the regions from the image's own header (validated again by the runtime's boot).
  Image probe;
  const Status s = probe.open(file_.data(), file_.size(), false);
  if (s != Status::kOk) {
    *err = path + ": " + status_message(s);
    *hint = status_hint(s);
    return false;
  }
  if (opts.run.seq_len > probe.info().config.seq_len) {
    *err = "--seq " + std::to_string(opts.run.seq_len) +
           " is longer than the image's sequence length " +
           std::to_string(probe.info().config.seq_len);
    *hint = "use a shorter --seq";
    return false;
  }
  if (!check_host_memory(path, probe.info(), opts.run, file_.size(), err, hint)) return false;
  const MemoryNeeds need = Stage::memory_needs(probe.info(), opts);
  fast_.assign(region_bytes_for(need.fast), 0);
  big_.assign(region_bytes_for(need.big), 0);
  exec_ = std::make_unique<ThreadExecutor>(threads);
  Platform p;
  p.image = file_.data();
  p.image_len = file_.size();
  p.link = link;
  p.clock = &clock_;
  p.executor = exec_.get();
  p.fast = MemoryRegion{fast_.data(), fast_.size()};
  p.big = MemoryRegion{big_.data(), big_.size()};
  p.console = console;
  p.log = log_stderr;
  p.boot_id = boot_id;
  p.name = "host";
  char msg[512];
  if (stage_.boot(p, opts, msg, sizeof msg) != Status::kOk) {
    *err = path + ": " + msg;
    hint->clear();
    return false;
  }
  return true;
}

}  // namespace llmwire
