// A ring stage reads from the previous board and writes to the next: one ByteLink made of
// two (on a board both are the same UART; in the simulator they are two pipes).
#pragma once

#include "link/byte_link.h"

namespace llmwire {

class SplitLink final : public ByteLink {
 public:
  SplitLink(ByteLink* rx, ByteLink* tx) : rx_(rx), tx_(tx) {}
  bool write(const uint8_t* data, size_t len) override { return tx_->write(data, len); }
  size_t read(uint8_t* buf, size_t max, uint32_t timeout_ms) override {
    return rx_->read(buf, max, timeout_ms);
  }
  bool ok() const override { return rx_->ok() && tx_->ok(); }

 private:
  ByteLink* rx_;
  ByteLink* tx_;
};

}  // namespace llmwire
