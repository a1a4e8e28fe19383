// The user's console: USB-Serial/JTAG (native USB) or UART0 (USB-UART bridge boards), chosen
// in Kconfig (llmwire → Console). ESP-IDF's own log output is routed through the same driver.
#pragma once

#include "esp_err.h"
#include "platform/platform.h"

namespace llmwire::esp32s3 {

class BoardConsole final : public Console {
 public:
  esp_err_t open();
  size_t read(char* buf, size_t max, uint32_t timeout_ms) override;
  // '\n' goes out as "\r\n" for serial terminals.
  void write(const char* s, size_t len) override;

 private:
  void write_raw(const char* s, size_t len);
};

}  // namespace llmwire::esp32s3
