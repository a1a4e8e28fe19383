#include "board_console.h"

#include "sdkconfig.h"
#include "uart_link.h"

#if CONFIG_LLMWIRE_CONSOLE_UART0
#include "driver/uart.h"
#include "driver/uart_vfs.h"
#else
#include "driver/usb_serial_jtag.h"
#include "driver/usb_serial_jtag_vfs.h"
#endif

namespace llmwire::esp32s3 {

#if CONFIG_LLMWIRE_CONSOLE_UART0

esp_err_t BoardConsole::open() {
  esp_err_t err = uart_driver_install(UART_NUM_0, 1024, 1024, 0, nullptr, 0);
  if (err != ESP_OK) return err;
  uart_config_t cfg = {};
  cfg.baud_rate = CONFIG_LLMWIRE_CONSOLE_UART_BAUD;
  cfg.data_bits = UART_DATA_8_BITS;
  cfg.parity = UART_PARITY_DISABLE;
  cfg.stop_bits = UART_STOP_BITS_1;
  cfg.flow_ctrl = UART_HW_FLOWCTRL_DISABLE;
  cfg.source_clk = UART_SCLK_DEFAULT;
  err = uart_param_config(UART_NUM_0, &cfg);
  if (err != ESP_OK) return err;
  uart_vfs_dev_use_driver(UART_NUM_0);  // ESP_LOG lines go through the driver too
  return ESP_OK;
}

size_t BoardConsole::read(char* buf, size_t max, uint32_t timeout_ms) {
  return uart_read_some(UART_NUM_0, reinterpret_cast<uint8_t*>(buf), max, timeout_ms);
}

void BoardConsole::write_raw(const char* s, size_t len) {
  uart_write_bytes(UART_NUM_0, s, len);
}

#else  // USB-Serial/JTAG

esp_err_t BoardConsole::open() {
  usb_serial_jtag_driver_config_t cfg = {};
  cfg.tx_buffer_size = 1024;
  cfg.rx_buffer_size = 1024;
  const esp_err_t err = usb_serial_jtag_driver_install(&cfg);
  if (err != ESP_OK) return err;
  usb_serial_jtag_vfs_use_driver();  // ESP_LOG lines go through the driver too
  return ESP_OK;
}

size_t BoardConsole::read(char* buf, size_t max, uint32_t timeout_ms) {
  const int n = usb_serial_jtag_read_bytes(buf, (uint32_t)max, ticks_for_ms(timeout_ms));
  return n > 0 ? (size_t)n : 0;
}

void BoardConsole::write_raw(const char* s, size_t len) {
  // With no terminal attached the TX buffer fills: give up after a short wait rather than
  // stall the story (the text is lost, the board keeps going).
  while (len > 0) {
    const int n = usb_serial_jtag_write_bytes(s, len, ticks_for_ms(50));
    if (n <= 0) return;
    s += n;
    len -= (size_t)n;
  }
}

#endif

void BoardConsole::write(const char* s, size_t len) {
  size_t start = 0;
  for (size_t i = 0; i < len; i++) {
    if (s[i] != '\n') continue;
    write_raw(s + start, i - start);
    write_raw("\r\n", 2);
    start = i + 1;
  }
  if (start < len) write_raw(s + start, len - start);
}

}  // namespace llmwire::esp32s3
