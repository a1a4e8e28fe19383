// The platform contract: all that llmwire's portable code (engine, link, pipeline, runtime)
// asks of a board. Three implementations exist: src/platform/host (POSIX: the CLI and the
// simulator), src/platform/rv32 (bare-metal RISC-V under QEMU, in CI) and
// firmware/esp32s3/main (ESP-IDF). A new board fills in one Platform and calls the runtime.
//
//   what                       interface               ESP32-S3                   host
//   the stage image, in place  image / image_len       esp_partition_mmap         mmap
//   link to the next board     ByteLink (with timeout) UART driver                fd, pty, tty
//   monotonic clock            Clock                   esp_timer_get_time         steady_clock
//   rows on the other core(s)  Executor                task pinned to core 0      thread pool
//   memory                     fast / big regions      internal SRAM / PSRAM      malloc
//   the user's console         Console                 USB-Serial-JTAG or UART0   stdin/stdout
//   log lines                  log()                   ESP_LOGI                   stderr
//
// Everything here is owned by the platform and outlives the runtime. The portable code never
// allocates, never calls the OS, and never formats floats with printf (nano printf works).
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "engine/arena.h"
#include "engine/executor.h"
#include "link/byte_link.h"
#include "pipeline/clock.h"

namespace llmwire {

// The user's serial console (the head only). Lines end with '\n' or '\r'.
class Console {
 public:
  // Reads up to `max` bytes, waiting at most timeout_ms for the first; 0 on timeout.
  virtual size_t read(char* buf, size_t max, uint32_t timeout_ms) = 0;
  virtual void write(const char* s, size_t len) = 0;
  // False once the console is gone for good (host: end of input).
  virtual bool ok() const { return true; }

 protected:
  ~Console() = default;  // never deleted through this interface (no operator delete on MCUs)
};

// Read speeds (bytes per second) of where a board's weights can live: the mapped image
// ("flash"), the big region and the fast one. The runtime copies hot weight tensors into RAM
// at boot only where that is faster (runtime/placement.h); all zero: weights stay in flash.
struct RegionSpeeds {
  uint32_t flash = 0, big = 0, fast = 0;
};

struct Platform {
  const uint8_t* image = nullptr;  // the stage image, 4-byte aligned, mapped for the run
  size_t image_len = 0;
  ByteLink* link = nullptr;      // TX to the next board, RX from the previous one
  Clock* clock = nullptr;        // monotonic microseconds
  Executor* executor = nullptr;  // splits matmul rows over the cores
  MemoryRegion fast;             // internal SRAM: activations, scratch, frame buffers
  MemoryRegion big;              // PSRAM: KV cache, logits, attention scores, token history
  RegionSpeeds speeds;           // weight placement: what pays (zeros: none)
  Console* console = nullptr;    // head: the user's console; may be null on workers
  void (*log)(void* ctx, const char* line) = nullptr;  // one line, no newline; may be null
  void* log_ctx = nullptr;
  uint32_t boot_id = 1;        // differs on every boot (random or a counter in NVS)
  const char* name = "board";  // shown in the boot banner ("esp32s3", "rv32-qemu", "host")
};

}  // namespace llmwire
