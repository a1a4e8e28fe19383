// A read-only image file in memory (the host's stand-in for a flash partition).
//
// The host reads the file into private anonymous memory instead of mapping it: a mapping of a
// file that another program truncates or rewrites while we run would SIGBUS or change the
// weights under the engine. The copy is taken once, checked against the file's size, and made
// read-only; what happens to the file afterwards cannot reach it.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <string>

namespace llmwire {

class MappedFile {
 public:
  MappedFile() = default;
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  // False with *err set ("cannot open X: No such file or directory", "X is a named pipe, not
  // a regular file"). Never blocks on a FIFO or device.
  bool open(const std::string& path, std::string* err);
  void close();
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
  size_t mapped_bytes_ = 0;  // of the anonymous mapping (0: none)
};

}  // namespace llmwire
