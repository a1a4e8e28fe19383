// The ring link on a UART: this board's TX to the next board's RX (Kconfig: llmwire → Link).
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "driver/uart.h"
#include "esp_err.h"
#include "link/byte_link.h"

namespace llmwire::esp32s3 {

// Reads what has arrived on an installed UART driver, up to `max` bytes, waiting at most
// timeout_ms for the first byte (uart_read_bytes alone waits for all `max`).
size_t uart_read_some(uart_port_t port, uint8_t* buf, size_t max, uint32_t timeout_ms);

// FreeRTOS ticks for a timeout in milliseconds, rounded up (a 1 ms wait never becomes 0).
TickType_t ticks_for_ms(uint32_t ms);

class UartLink final : public ByteLink {
 public:
  // Installs the UART driver: 8N1, no flow control, RX buffer for the largest frame.
  esp_err_t open(uart_port_t port, int tx_pin, int rx_pin, int baud);
  bool write(const uint8_t* data, size_t len) override;
  size_t read(uint8_t* buf, size_t max, uint32_t timeout_ms) override;

 private:
  uart_port_t port_ = UART_NUM_1;
};

}  // namespace llmwire::esp32s3
