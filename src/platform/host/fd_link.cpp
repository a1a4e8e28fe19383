#include "platform/host/fd_link.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

namespace llmwire {
namespace {

uint64_t now_ms() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

// Waits for `events` on fd for at most timeout_ms, retrying on EINTR with the time left.
// Returns poll's revents, 0 on timeout, -1 on error (errno set).
int wait_fd(int fd, short events, uint32_t timeout_ms) {
  const uint64_t deadline = now_ms() + timeout_ms;
  for (;;) {
    struct pollfd p;
    p.fd = fd;
    p.events = events;
    p.revents = 0;
    const uint64_t t = now_ms();
    const int left = t >= deadline ? 0 : (int)(deadline - t);
    const int r = poll(&p, 1, left);
    if (r > 0) return p.revents;
    if (r == 0) return 0;
    if (errno != EINTR) return -1;
  }
}

}  // namespace

FdLink::~FdLink() {
  close();
}

void FdLink::adopt(int fd, bool owns) {
  close();
  fd_ = fd;
  owns_ = owns;
  failed_ = false;
  error_.clear();
  if (fd_ < 0) return;
  const int fl = fcntl(fd_, F_GETFL);
  if (fl >= 0) fcntl(fd_, F_SETFL, fl | O_NONBLOCK);
  struct stat st;
  is_socket_ = fstat(fd_, &st) == 0 && S_ISSOCK(st.st_mode);
#ifdef F_SETNOSIGPIPE
  fcntl(fd_, F_SETNOSIGPIPE, 1);
#endif
}

void FdLink::close() {
  if (fd_ >= 0 && owns_) ::close(fd_);
  fd_ = -1;
  owns_ = false;
}

void FdLink::fail(const std::string& what, int err) {
  failed_ = true;
  error_ = err ? what + ": " + strerror(err) : what;
}

// One write(2) without SIGPIPE: sockets use MSG_NOSIGNAL; for pipes the signal is blocked
// for this thread and a pending one is consumed, so the caller just sees EPIPE.
long FdLink::write_some(const uint8_t* data, size_t len) {
#ifdef MSG_NOSIGNAL
  if (is_socket_) return (long)::send(fd_, data, len, MSG_NOSIGNAL);
#endif
#if defined(__linux__)
  sigset_t block, old;
  sigemptyset(&block);
  sigaddset(&block, SIGPIPE);
  sigset_t pending;
  sigemptyset(&pending);
  sigpending(&pending);
  const bool was_pending = sigismember(&pending, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &block, &old);
  const long n = (long)::write(fd_, data, len);
  const int saved = errno;
  if (n < 0 && saved == EPIPE && !was_pending) {
    struct timespec zero = {0, 0};
    while (sigtimedwait(&block, nullptr, &zero) < 0 && errno == EINTR) {
    }
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  errno = saved;
  return n;
#else
  return (long)::write(fd_, data, len);
#endif
}

bool FdLink::write(const uint8_t* data, size_t len) {
  if (!ok()) return false;
  while (len > 0) {
    const long n = write_some(data, len);
    if (n > 0) {
      data += n;
      len -= (size_t)n;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      const int r = wait_fd(fd_, POLLOUT, write_timeout_ms_);
      if (r == 0) {
        fail("write timed out (the peer is not reading)", 0);
        return false;
      }
      if (r < 0) {
        fail("poll", errno);
        return false;
      }
      if (r & POLLNVAL) {
        fail("write: bad file descriptor", 0);
        return false;
      }
      continue;  // POLLOUT, or POLLERR/POLLHUP: the next write reports the error
    }
    fail("write", n < 0 ? errno : EIO);
    return false;
  }
  return true;
}

size_t FdLink::read(uint8_t* buf, size_t max, uint32_t timeout_ms) {
  if (!ok() || !buf || max == 0) return 0;
  for (;;) {
    const int r = wait_fd(fd_, POLLIN, timeout_ms);
    if (r == 0) return 0;
    if (r < 0) {
      fail("poll", errno);
      return 0;
    }
    if (r & POLLNVAL) {
      fail("read: bad file descriptor", 0);
      return 0;
    }
    const ssize_t n = ::read(fd_, buf, max);
    if (n > 0) return (size_t)n;
    if (n == 0) {
      fail("peer closed the link", 0);
      return 0;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;  // spurious wakeup
    // EIO: pty whose other side closed, or a USB serial adapter unplugged.
    fail(errno == EIO ? "link hung up (device removed or peer closed)" : "read",
         errno == EIO ? 0 : errno);
    return 0;
  }
}

bool make_socket_pair(int fds[2], std::string* err) {
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0) {
    if (err) *err = std::string("socketpair: ") + strerror(errno);
    return false;
  }
  for (int i = 0; i < 2; i++) fcntl(fds[i], F_SETFD, FD_CLOEXEC);
  return true;
}

}  // namespace llmwire
