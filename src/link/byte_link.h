// The byte transport a pipeline link runs over: a UART on the board, a pty / serial port /
// pipe / socket on the host, an in-memory queue in tests. Deliberately tiny: the framing
// (frame.h) gives it structure, the session layer gives it meaning.
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace llmwire {

class ByteLink {
 public:
  // Writes all `len` bytes or fails (false: the link is broken, see ok()). May block until
  // the transport has room; never returns having written only part of the data.
  virtual bool write(const uint8_t* data, size_t len) = 0;
  // Reads up to `max` bytes, waiting at most `timeout_ms` for the first one; returns how many
  // were read, 0 on timeout (or when the link is broken: check ok()). timeout_ms = 0 polls.
  virtual size_t read(uint8_t* buf, size_t max, uint32_t timeout_ms) = 0;
  // False once the link is closed or failed for good (peer hung up, device unplugged).
  virtual bool ok() const { return true; }

 protected:
  ~ByteLink() = default;  // not deleted through the interface: no operator delete on MCUs
};

}  // namespace llmwire
