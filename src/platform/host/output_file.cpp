#include "platform/host/output_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

namespace llmwire {

bool check_output_path(const std::string& out, const std::vector<std::string>& inputs,
                       std::string* err) {
  if (out.empty()) {
    *err = "no output path given";
    return false;
  }
  struct stat os;
  if (stat(out.c_str(), &os) != 0) return true;  // a new file (or a dangling symlink: replaced)
  if (!S_ISREG(os.st_mode)) {
    *err = out + " exists and is not a regular file (a " +
           (S_ISDIR(os.st_mode)    ? std::string("folder")
            : S_ISCHR(os.st_mode)  ? std::string("character device")
            : S_ISBLK(os.st_mode)  ? std::string("block device")
            : S_ISFIFO(os.st_mode) ? std::string("named pipe")
                                   : std::string("special file")) +
           "): give the path of a file to write";
    return false;
  }
  for (const std::string& in : inputs) {
    struct stat is;
    if (!in.empty() && stat(in.c_str(), &is) == 0 && is.st_dev == os.st_dev &&
        is.st_ino == os.st_ino) {
      *err = "the output " + out + " is the input " + in +
             ": writing it would destroy the input; give another output path";
      return false;
    }
  }
  return true;
}

OutputFile::~OutputFile() {
  discard();
}

bool OutputFile::open(const std::string& path, const std::vector<std::string>& inputs,
                      std::string* err) {
  discard();
  if (!check_output_path(path, inputs, err)) return false;
  path_ = path;
  errno_ = 0;
  written_ = 0;
  const size_t slash = path.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "" : path.substr(0, slash + 1);
  const std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  std::string tmpl = dir + "." + base + ".tmp-XXXXXX";
  const int fd = mkstemp(&tmpl[0]);  // O_CREAT | O_EXCL, mode 0600
  if (fd < 0) {
    *err = "cannot create a temp file beside " + path + ": " + strerror(errno) +
           " (check that the folder exists and is writable)";
    return false;
  }
  // The permissions a plain create would give (0666 minus the umask).
  const mode_t mask = umask(0);
  umask(mask);
  fchmod(fd, 0666 & ~mask);
  f_ = fdopen(fd, "wb");
  if (!f_) {
    *err = "cannot open " + tmpl + ": " + strerror(errno);
    ::close(fd);
    unlink(tmpl.c_str());
    return false;
  }
  tmp_ = tmpl;
  return true;
}

void OutputFile::write(const void* data, size_t n) {
  if (!f_ || errno_ || n == 0) return;
  if (fwrite(data, 1, n, f_) != n) errno_ = errno ? errno : EIO;
  written_ += n;
}

bool OutputFile::commit(std::string* err) {
  if (!f_) {
    *err = "no output file is open";
    return false;
  }
  int e = errno_;
  if (e == 0 && fflush(f_) != 0) e = errno ? errno : EIO;
  if (e == 0 && fsync(fileno(f_)) != 0 && errno != EINVAL) e = errno;
  if (fclose(f_) != 0 && e == 0) e = errno ? errno : EIO;
  f_ = nullptr;
  if (e == 0) {
    // The output may have been replaced by something else since open(): check again.
    std::string why;
    if (!check_output_path(path_, {}, &why)) {
      unlink(tmp_.c_str());
      tmp_.clear();
      *err = why;
      return false;
    }
    if (rename(tmp_.c_str(), path_.c_str()) == 0) {
      tmp_.clear();
      return true;
    }
    e = errno;
    *err = "cannot rename " + tmp_ + " to " + path_ + ": " + strerror(e);
  } else {
    *err = "cannot write " + path_ + ": " + strerror(e) +
           (e == ENOSPC ? " (it needs " + std::to_string(written_) + " bytes; free some space)"
                        : std::string());
  }
  unlink(tmp_.c_str());
  tmp_.clear();
  return false;
}

void OutputFile::discard() {
  if (f_) {
    fclose(f_);
    f_ = nullptr;
  }
  if (!tmp_.empty()) {
    unlink(tmp_.c_str());
    tmp_.clear();
  }
}

}  // namespace llmwire
