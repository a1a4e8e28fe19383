// A serial device (/dev/ttyUSB0, /dev/ttyACM0, a pty slave...) as a ByteLink: raw 8N1, no
// flow control, no echo, no line editing, at a standard baud rate. The port is locked
// (flock) so a second program cannot interleave bytes, and HUPCL is cleared so closing the
// port does not drop DTR (which resets many ESP32 dev boards through their auto-reset circuit).
#pragma once

#include <stdint.h>

#include <string>

#include "platform/host/fd_link.h"

namespace llmwire {

class SerialPort final : public FdLink {
 public:
  SerialPort() = default;
  // False with *err set to a message that says what to do, e.g.
  // "cannot open /dev/ttyUSB0: Permission denied — add yourself to the dialout group ...".
  bool open(const std::string& path, uint32_t baud, std::string* err);
  const std::string& path() const { return path_; }
  uint32_t baud() const { return baud_; }

  // Whether `baud` is one this host can set ("115200, 230400, ..." in supported_bauds()).
  static bool baud_supported(uint32_t baud);
  static std::string supported_bauds();

 private:
  std::string path_;
  uint32_t baud_ = 0;
};

}  // namespace llmwire
