// ByteLink over a POSIX file descriptor: pipe, socketpair, pty, serial device. Reads wait
// with poll(); writes loop until everything is written (waiting with poll() if the fd is
// non-blocking and full). A closed peer or a dead device turns ok() false with a reason in
// error(); writing to a closed pipe or socket never raises SIGPIPE.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <string>

#include "link/byte_link.h"

namespace llmwire {

class FdLink : public ByteLink {
 public:
  FdLink() = default;
  // Uses `fd` (set non-blocking); closes it on destruction when `owns`.
  explicit FdLink(int fd, bool owns = false) { adopt(fd, owns); }
  virtual ~FdLink();  // host code: SerialPort derives from it
  FdLink(const FdLink&) = delete;
  FdLink& operator=(const FdLink&) = delete;

  void adopt(int fd, bool owns);
  void close();
  int fd() const { return fd_; }

  bool write(const uint8_t* data, size_t len) override;
  size_t read(uint8_t* buf, size_t max, uint32_t timeout_ms) override;
  bool ok() const override { return fd_ >= 0 && !failed_; }
  // Why the link failed ("" while ok).
  const std::string& error() const { return error_; }
  // A write that makes no progress for this long fails (the peer stopped reading).
  void set_write_timeout_ms(uint32_t ms) { write_timeout_ms_ = ms; }

 protected:
  void fail(const std::string& what, int err);

 private:
  long write_some(const uint8_t* data, size_t len);

  int fd_ = -1;
  bool owns_ = false;
  bool is_socket_ = false;
  bool failed_ = false;
  uint32_t write_timeout_ms_ = 5000;
  std::string error_;
};

// A connected pair of sockets (AF_UNIX, SOCK_STREAM): a blocking, thread-safe in-process link.
// Returns false with *err set on failure.
bool make_socket_pair(int fds[2], std::string* err);

}  // namespace llmwire
