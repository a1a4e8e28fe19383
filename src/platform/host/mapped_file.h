// Read-only memory map of a file (the host's stand-in for a flash partition).
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

  // False with *err set ("cannot open X: No such file or directory").
  bool open(const std::string& path, std::string* err);
  void close();
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
  bool mapped_ = false;
};

}  // namespace llmwire
