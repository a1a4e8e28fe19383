// Writing a user's output file without ever destroying something else: the bytes go to a
// fresh temp file beside the output (mkstemp, O_EXCL: a planted symlink is never followed),
// which is renamed over the output only when everything was written and synced. The output
// must be a new path or an existing regular file that is none of the command's inputs; a
// device, pipe or folder is refused instead of being replaced by a rename.
#pragma once

#include <stddef.h>
#include <stdio.h>

#include <string>
#include <vector>

namespace llmwire {

// Refuses `out` when it exists and is not a regular file, or is the same file (device and
// inode, so another name or a hard link counts) as one of `inputs`. *err says which and why.
bool check_output_path(const std::string& out, const std::vector<std::string>& inputs,
                       std::string* err);

class OutputFile {
 public:
  OutputFile() = default;
  ~OutputFile();  // removes the temp file unless commit() succeeded
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;

  // Checks the path (check_output_path) and creates the temp file beside it.
  bool open(const std::string& path, const std::vector<std::string>& inputs, std::string* err);
  // Buffered write; errors are remembered and reported by commit().
  void write(const void* data, size_t n);
  // Flushes, fsyncs and renames the temp file over the output. False with *err on any error
  // seen since open() (the temp file is then removed and the output left as it was).
  bool commit(std::string* err);
  // Removes the temp file; the output is left as it was.
  void discard();
  const std::string& temp_path() const { return tmp_; }

 private:
  std::string path_, tmp_;
  FILE* f_ = nullptr;
  int errno_ = 0;
  size_t written_ = 0;
};

}  // namespace llmwire
