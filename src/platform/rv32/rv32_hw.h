// The emulated board's hardware (qemu-system-riscv32 -M virt): a 16550 UART as the ring link,
// the CLINT's mtime as the clock, semihosting for the console and log, the test device for
// the exit code, and minstret for instruction counts. Bare metal, no OS, no heap.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "link/byte_link.h"
#include "pipeline/clock.h"
#include "platform/platform.h"

namespace llmwire::rv32 {

// Monotonic microseconds from the CLINT's mtime (10 MHz on the virt machine).
class MtimeClock final : public Clock {
 public:
  uint64_t now_us() override;
};

// The ring link on the 16550 UART at 0x10000000: TX to the next board, RX from the previous.
// Polled (no interrupts); read() waits on the clock.
class UartLink final : public ByteLink {
 public:
  explicit UartLink(Clock* clock);
  bool write(const uint8_t* data, size_t len) override;
  size_t read(uint8_t* buf, size_t max, uint32_t timeout_ms) override;

 private:
  Clock* clock_;
};

// The user's console on semihosting stdin/stdout (the host's file descriptors 0 and 1).
class SemihostConsole final : public Console {
 public:
  SemihostConsole();
  size_t read(char* buf, size_t max, uint32_t timeout_ms) override;
  void write(const char* s, size_t len) override;
  bool ok() const override { return !eof_; }

 private:
  long in_, out_;
  bool eof_ = false;
};

// A log line on semihosting stderr.
void log_line(void* ctx, const char* line);
// The semihosting command line (qemu -semihosting-config arg=...), or "" if none.
const char* command_line();
// Ends the emulation with this exit status (virt's test device).
[[noreturn]] void power_off(int code);
// Instructions retired (exact under qemu -icount shift=0).
uint64_t instret();

}  // namespace llmwire::rv32
