// A pseudo-terminal pair for tests and the simulator: the slave path behaves like a serial
// device (open it with SerialPort), the master fd is "the board on the other end of the
// cable". The slave is held open in raw mode from the start, so bytes written to the master
// before anyone opens the slave are kept and not echoed or translated, and the master never
// sees a hang-up while the pair is alive.
#pragma once

#include <string>

namespace llmwire {

class PtyPair {
 public:
  PtyPair() = default;
  ~PtyPair() { close(); }
  PtyPair(const PtyPair&) = delete;
  PtyPair& operator=(const PtyPair&) = delete;

  // False with *err set on failure.
  bool open(std::string* err);
  void close();

  int master_fd() const { return master_; }
  const std::string& slave_path() const { return slave_path_; }
  // Gives up ownership of the master fd (the caller closes it).
  int release_master();
  // Stops holding the slave open: once every user has closed it, reads on the master report
  // a hang-up (models unplugging the cable).
  void release_slave_hold();

 private:
  int master_ = -1;
  int slave_hold_ = -1;
  std::string slave_path_;
};

}  // namespace llmwire
