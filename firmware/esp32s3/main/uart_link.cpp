#include "uart_link.h"

#include "link/frame.h"

namespace llmwire::esp32s3 {

TickType_t ticks_for_ms(uint32_t ms) {
  return (TickType_t)((ms + portTICK_PERIOD_MS - 1) / portTICK_PERIOD_MS);
}

size_t uart_read_some(uart_port_t port, uint8_t* buf, size_t max, uint32_t timeout_ms) {
  if (max == 0) return 0;
  size_t avail = 0;
  if (uart_get_buffered_data_len(port, &avail) != ESP_OK) return 0;
  if (avail == 0) {
    // Wait for the first byte only, then take whatever else has arrived with it.
    const int first = uart_read_bytes(port, buf, 1, ticks_for_ms(timeout_ms));
    if (first <= 0) return 0;
    if (uart_get_buffered_data_len(port, &avail) != ESP_OK || avail == 0 || max == 1) return 1;
    const size_t more = avail < max - 1 ? avail : max - 1;
    const int n = uart_read_bytes(port, buf + 1, (uint32_t)more, 0);
    return 1 + (n > 0 ? (size_t)n : 0);
  }
  const size_t want = avail < max ? avail : max;
  const int n = uart_read_bytes(port, buf, (uint32_t)want, 0);
  return n > 0 ? (size_t)n : 0;
}

esp_err_t UartLink::open(uart_port_t port, int tx_pin, int rx_pin, int baud) {
  port_ = port;
  // The RX ring buffer holds two of the largest frames: the worker may be busy computing
  // while the next one arrives.
  constexpr int kRxBuffer = 2 * (int)kMaxFrameSize;
  constexpr int kTxBuffer = 4096;
  esp_err_t err = uart_driver_install(port, kRxBuffer, kTxBuffer, 0, nullptr, 0);
  if (err != ESP_OK) return err;
  uart_config_t cfg = {};
  cfg.baud_rate = baud;
  cfg.data_bits = UART_DATA_8_BITS;
  cfg.parity = UART_PARITY_DISABLE;
  cfg.stop_bits = UART_STOP_BITS_1;
  cfg.flow_ctrl = UART_HW_FLOWCTRL_DISABLE;
  cfg.source_clk = UART_SCLK_DEFAULT;
  err = uart_param_config(port, &cfg);
  if (err != ESP_OK) return err;
  return uart_set_pin(port, tx_pin, rx_pin, UART_PIN_NO_CHANGE, UART_PIN_NO_CHANGE);
}

bool UartLink::write(const uint8_t* data, size_t len) {
  // Blocks until every byte is in the driver's TX buffer.
  return uart_write_bytes(port_, data, len) == (int)len;
}

size_t UartLink::read(uint8_t* buf, size_t max, uint32_t timeout_ms) {
  return uart_read_some(port_, buf, max, timeout_ms);
}

}  // namespace llmwire::esp32s3
