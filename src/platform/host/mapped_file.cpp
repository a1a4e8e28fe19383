#include "platform/host/mapped_file.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace llmwire {

namespace {

const char* file_kind(mode_t m) {
  if (S_ISDIR(m)) return "a folder";
  if (S_ISFIFO(m)) return "a named pipe";
  if (S_ISCHR(m)) return "a character device";
  if (S_ISBLK(m)) return "a block device";
  if (S_ISSOCK(m)) return "a socket";
  return "not a regular file";
}

}  // namespace

MappedFile::~MappedFile() {
  close();
}

bool MappedFile::open(const std::string& path, std::string* err) {
  close();
  // O_NONBLOCK: opening a FIFO with no writer would otherwise block forever.
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    *err = "cannot open " + path + ": " + strerror(errno);
    return false;
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    *err = path + " is " + file_kind(st.st_mode) + ", not a regular file: give an image file";
    ::close(fd);
    return false;
  }
  const size_t size = (size_t)st.st_size;
  if (size == 0) {
    // An empty file is still a (too small) image to report on.
    static const uint32_t kEmpty = 0;
    data_ = (uint8_t*)&kEmpty;
    ::close(fd);
    return true;
  }
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    *err = "cannot load " + path + " (" + std::to_string(size) + " bytes): " + strerror(errno) +
           "; free some memory";
    ::close(fd);
    return false;
  }
#ifdef MADV_HUGEPAGE
  // Weights are streamed once per token: 2 MB pages spare a TLB miss per 4 KB and let the
  // hardware prefetcher run past page ends. Advice only; no error if the kernel declines.
  madvise(p, size, MADV_HUGEPAGE);
#endif
  uint8_t* buf = static_cast<uint8_t*>(p);
  size_t got = 0;
  while (got < size) {
    const ssize_t n = pread(fd, buf + got, size - got, (off_t)got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += (size_t)n;
  }
  const int read_errno = errno;
  struct stat after;
  const bool changed = fstat(fd, &after) != 0 || (size_t)after.st_size != size;
  ::close(fd);
  if (got != size || changed) {
    munmap(p, size);
    *err = got != size && !changed && read_errno
               ? "cannot read " + path + ": " + strerror(read_errno)
               : path + " changed size while being read (another program is writing it): " +
                     "wait until it is complete and try again";
    return false;
  }
  mprotect(p, size, PROT_READ);
  data_ = buf;
  size_ = size;
  mapped_bytes_ = size;
  return true;
}

void MappedFile::close() {
  if (mapped_bytes_) munmap(data_, mapped_bytes_);
  data_ = nullptr;
  size_ = 0;
  mapped_bytes_ = 0;
}

}  // namespace llmwire
