#include "platform/host/pty_pair.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

namespace llmwire {

bool PtyPair::open(std::string* err) {
  close();
  auto fail = [&](const char* what) {
    if (err) *err = std::string(what) + ": " + strerror(errno);
    close();
    return false;
  };
  master_ = posix_openpt(O_RDWR | O_NOCTTY);
  if (master_ < 0) return fail("posix_openpt");
  fcntl(master_, F_SETFD, FD_CLOEXEC);
  if (grantpt(master_) != 0) return fail("grantpt");
  if (unlockpt(master_) != 0) return fail("unlockpt");
#if defined(__linux__)
  char name[128];
  if (ptsname_r(master_, name, sizeof name) != 0) return fail("ptsname_r");
  slave_path_ = name;
#else
  const char* name = ptsname(master_);
  if (!name) return fail("ptsname");
  slave_path_ = name;
#endif
  slave_hold_ = ::open(slave_path_.c_str(), O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (slave_hold_ < 0) return fail("open pty slave");
  struct termios t;
  if (tcgetattr(slave_hold_, &t) != 0) return fail("tcgetattr pty slave");
  cfmakeraw(&t);
  t.c_cc[VMIN] = 0;
  t.c_cc[VTIME] = 0;
  if (tcsetattr(slave_hold_, TCSANOW, &t) != 0) return fail("tcsetattr pty slave");
  if (err) err->clear();
  return true;
}

void PtyPair::close() {
  if (master_ >= 0) ::close(master_);
  if (slave_hold_ >= 0) ::close(slave_hold_);
  master_ = slave_hold_ = -1;
  slave_path_.clear();
}

int PtyPair::release_master() {
  const int fd = master_;
  master_ = -1;
  return fd;
}

void PtyPair::release_slave_hold() {
  if (slave_hold_ >= 0) ::close(slave_hold_);
  slave_hold_ = -1;
}

}  // namespace llmwire
