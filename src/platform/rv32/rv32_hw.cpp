#include "platform/rv32/rv32_hw.h"

#include <string.h>

namespace llmwire::rv32 {
namespace {

constexpr uintptr_t kUart = 0x10000000;   // 16550: THR/RBR 0, IER 1, FCR 2, LCR 3, LSR 5
constexpr uintptr_t kMtime = 0x0200BFF8;  // CLINT mtime, 10 MHz
constexpr uintptr_t kTestDevice = 0x00100000;

// Sleeping instead of spinning: the UART's receive interrupt goes through the PLIC (source
// 10, hart 0 M-mode context) and the CLINT timer compare ends a timeout; with both enabled in
// mie (and mstatus.MIE off, so no trap is taken) WFI returns when either fires. A spinning
// guest would keep QEMU's I/O thread from feeding the UART in time on a busy host.
constexpr uintptr_t kPlic = 0x0C000000;
constexpr uint32_t kUartIrq = 10;
constexpr uintptr_t kMtimecmp = 0x02004000;

volatile uint32_t* reg32(uintptr_t a) {
  return reinterpret_cast<volatile uint32_t*>(a);
}

uint64_t mtime_ticks() {
  volatile uint32_t* t = reg32(kMtime);
  uint32_t hi, lo;
  do {
    hi = t[1];
    lo = t[0];
  } while (t[1] != hi);
  return ((uint64_t)hi << 32) | lo;
}

void set_mtimecmp(uint64_t v) {
  volatile uint32_t* c = reg32(kMtimecmp);
  c[1] = 0xFFFFFFFFu;  // no spurious match while the halves change
  c[0] = (uint32_t)v;
  c[1] = (uint32_t)(v >> 32);
}

void wait_for_interrupt() {
  asm volatile("wfi" ::: "memory");
  const uint32_t id = *reg32(kPlic + 0x200004);  // claim ...
  if (id) *reg32(kPlic + 0x200004) = id;         // ... and complete
}

volatile uint8_t* uart(int reg) {
  return reinterpret_cast<volatile uint8_t*>(kUart + reg);
}

// One semihosting call: the magic slli/ebreak/srai sequence, uncompressed, in a function of
// its own so that it sits on one page (16-byte aligned section).
asm(".section .text.llmwire_semihost,\"ax\",@progbits\n"
    ".balign 16\n.option push\n.option norvc\n.option norelax\n"
    ".globl llmwire_semihost\nllmwire_semihost:\n"
    "slli x0, x0, 0x1f\nebreak\nsrai x0, x0, 7\nret\n.option pop\n.text\n");
extern "C" long llmwire_semihost(long op, const void* arg);

long semihost(long op, const void* arg) {
  return llmwire_semihost(op, arg);
}

constexpr long kSysOpen = 0x01, kSysWrite = 0x05, kSysRead = 0x06, kSysGetCmdline = 0x15;

long open_tt(long mode) {
  const long args[3] = {(long)":tt", mode, 3};
  return semihost(kSysOpen, args);
}

void sh_write(long fd, const char* s, size_t len) {
  const long args[3] = {fd, (long)s, (long)len};
  semihost(kSysWrite, args);
}

long g_stderr = -1;

}  // namespace

uint64_t MtimeClock::now_us() {
  return mtime_ticks() / 10;
}

UartLink::UartLink(Clock* clock) : clock_(clock) {
  *uart(3) = 0x80;  // divisor latch: 230400 baud, so the FIFO's character timeout is short
  *uart(0) = 0x01;
  *uart(1) = 0x00;
  *uart(3) = 0x03;  // 8N1
  *uart(2) = 0xC7;  // FIFOs on and cleared, receive trigger at 14 bytes
  *uart(1) = 0x01;  // interrupt on received data (and the FIFO's character timeout)
  *reg32(kPlic + 4 * kUartIrq) = 1;         // priority
  *reg32(kPlic + 0x2000) = 1u << kUartIrq;  // enabled for hart 0, M-mode
  *reg32(kPlic + 0x200000) = 0;             // threshold
  set_mtimecmp(~0ull);
  asm volatile("csrs mie, %0" ::"r"((1u << 11) | (1u << 7)));  // MEIE, MTIE; mstatus.MIE off
}

bool UartLink::write(const uint8_t* data, size_t len) {
  for (size_t i = 0; i < len; i++) {
    while (!(*uart(5) & 0x20)) {
    }
    *uart(0) = data[i];
  }
  return true;
}

size_t UartLink::read(uint8_t* buf, size_t max, uint32_t timeout_ms) {
  size_t n = 0;
  if (max == 0) return 0;
  if (!(*uart(5) & 0x01) && timeout_ms > 0) {
    (void)clock_;
    const uint64_t end = mtime_ticks() + (uint64_t)timeout_ms * 10000;
    set_mtimecmp(end);
    while (!(*uart(5) & 0x01)) {
      if (mtime_ticks() >= end) {
        set_mtimecmp(~0ull);
        return 0;
      }
      wait_for_interrupt();
    }
    set_mtimecmp(~0ull);
  }
  while (n < max && (*uart(5) & 0x01)) buf[n++] = *uart(0);
  return n;
}

SemihostConsole::SemihostConsole() : in_(open_tt(0)), out_(open_tt(4)) {}

size_t SemihostConsole::read(char* buf, size_t max, uint32_t) {
  // Semihosting reads block the core until the host has input; a board's head has nothing
  // else to do while it waits for a line, so the timeout is not needed here.
  if (eof_ || in_ < 0) {
    eof_ = true;
    return 0;
  }
  const long args[3] = {in_, (long)buf, (long)max};
  const long left = semihost(kSysRead, args);  // bytes NOT read
  if (left < 0 || (size_t)left >= max) {
    eof_ = true;
    return 0;
  }
  return max - (size_t)left;
}

void SemihostConsole::write(const char* s, size_t len) {
  if (out_ >= 0) sh_write(out_, s, len);
}

void log_line(void*, const char* line) {
  if (g_stderr < 0) g_stderr = open_tt(8);
  char buf[400];
  size_t n = 0;
  while (n < sizeof buf - 1 && line[n]) n++;
  memcpy(buf, line, n);
  buf[n++] = '\n';
  sh_write(g_stderr, buf, n);
}

const char* command_line() {
  static char buf[256];
  long args[2] = {(long)buf, (long)sizeof buf - 1};
  if (semihost(kSysGetCmdline, args) != 0) return "";
  buf[sizeof buf - 1] = 0;
  return buf;
}

void power_off(int code) {
  volatile uint32_t* dev = reinterpret_cast<volatile uint32_t*>(kTestDevice);
  *dev = code == 0 ? 0x5555u : (((uint32_t)code & 0xFFFFu) << 16) | 0x3333u;
  for (;;) {
  }
}

uint64_t instret() {
  uint32_t hi, lo, hi2;
  do {
    asm volatile("csrr %0, minstreth" : "=r"(hi));
    asm volatile("csrr %0, minstret" : "=r"(lo));
    asm volatile("csrr %0, minstreth" : "=r"(hi2));
  } while (hi != hi2);
  return ((uint64_t)hi << 32) | lo;
}

}  // namespace llmwire::rv32

// What the C++ runtime needs on bare metal without libstdc++.
extern "C" void __cxa_pure_virtual() {
  llmwire::rv32::log_line(nullptr, "fatal: pure virtual call");
  llmwire::rv32::power_off(3);
}

extern "C" void _exit(int code) {
  llmwire::rv32::power_off(code);
}
