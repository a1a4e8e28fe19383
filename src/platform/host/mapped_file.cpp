#include "platform/host/mapped_file.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace llmwire {

MappedFile::~MappedFile() {
  close();
}

bool MappedFile::open(const std::string& path, std::string* err) {
  close();
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) {
    *err = "cannot open " + path + ": " + strerror(errno);
    return false;
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    *err = path + " is not a regular file";
    ::close(fd);
    return false;
  }
  size_ = (size_t)st.st_size;
  if (size_ == 0) {
    // mmap of 0 bytes fails; an empty file is still a (too small) image to report on.
    static const uint32_t kEmpty = 0;
    data_ = (uint8_t*)&kEmpty;
    ::close(fd);
    return true;
  }
  void* p = mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (p == MAP_FAILED) {
    *err = "cannot map " + path + ": " + strerror(errno);
    size_ = 0;
    return false;
  }
  data_ = static_cast<uint8_t*>(p);
  mapped_ = true;
  return true;
}

void MappedFile::close() {
  if (mapped_) munmap(data_, size_);
  data_ = nullptr;
  size_ = 0;
  mapped_ = false;
}

}  // namespace llmwire
