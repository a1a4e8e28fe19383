// The firmware of an emulated board (bare-metal rv32imafc on qemu-system-riscv32 -M virt):
// one program for every board, the role comes from the stage image in pflash. It fills in the
// platform contract (src/platform/platform.h) and runs the portable runtime: a worker serves
// the ring, the head runs the console (semihosting stdin/stdout) until the console closes.
//
// Options come on the semihosting command line (qemu -semihosting-config arg=...):
//   boot=N       boot id (must differ on every boot of a board; the simulator counts)
//   timeout=MS   head: resend a position not back in this time
//   window=N     head: prompt chunks in flight
//   batch=N      prompt positions per chunk and pass over the weights (RunOptions::prompt_batch)
#include <stdio.h>
#include <string.h>

#include "engine/image_header.h"
#include "platform/rv32/rv32_hw.h"
#include "runtime/console_commands.h"
#include "runtime/head_console.h"
#include "runtime/stage.h"

namespace llmwire::rv32 {
namespace {

// ESP32-S3-like budget: internal SRAM and PSRAM, as static arrays (no heap).
constexpr size_t kFastBytes = 512 * 1024;
constexpr size_t kBigBytes = 8 * 1024 * 1024;
alignas(16) uint8_t g_fast[kFastBytes];
alignas(16) uint8_t g_big[kBigBytes];

// The model image: pflash unit 0, a 32 MiB window, read in place.
const uint8_t* const kFlash = reinterpret_cast<const uint8_t*>(0x20000000);
constexpr size_t kFlashBytes = 32u * 1024 * 1024;

MtimeClock g_clock;
SerialExecutor g_exec;
Stage g_stage;
HeadConsole g_head;

struct Options {
  uint32_t boot_id = 1;
  uint32_t timeout_ms = 2000;
  uint32_t window = 4;
  uint32_t batch = 1;
};

// "key=123" words of the command line; unknown words are ignored.
Options parse_options(const char* s) {
  Options o;
  while (*s) {
    while (*s == ' ') s++;
    const char* w = s;
    while (*s && *s != ' ') s++;
    const char* eq = static_cast<const char*>(memchr(w, '=', (size_t)(s - w)));
    if (!eq) continue;
    uint64_t v = 0;
    if (!parse_u64(eq + 1, (size_t)(s - eq - 1), &v) || v == 0 || v > 0xFFFFFFFFu) continue;
    const size_t k = (size_t)(eq - w);
    if (k == 4 && !memcmp(w, "boot", 4)) o.boot_id = (uint32_t)v;
    if (k == 7 && !memcmp(w, "timeout", 7)) o.timeout_ms = (uint32_t)v;
    if (k == 6 && !memcmp(w, "window", 6)) o.window = (uint32_t)v;
    if (k == 5 && !memcmp(w, "batch", 5) && v <= kMaxPromptBatch) o.batch = (uint32_t)v;
  }
  return o;
}

// Instructions retired between streamed story pieces: the cost of one generated token (the
// forward pass of the head's layers and classifier plus sampling; on a ring also the wait for
// the other boards). minstret counts instructions only under qemu -icount shift=0 (otherwise
// it follows the host's clock).
struct TokenMeter {
  Console* console = nullptr;
  uint64_t last = 0;
  uint32_t gaps[1024];
  size_t count = 0;
};
TokenMeter g_meter;

void emit_metered(void* ctx, const char* s, size_t n) {
  TokenMeter* m = static_cast<TokenMeter*>(ctx);
  const uint64_t now = instret();
  const uint64_t d = now - m->last;
  // Pieces streamed back to back (the prompt's, or a token decoded in several pieces) are
  // not a forward pass: no forward of any model costs under 10k instructions.
  if (m->last && d >= 10000 && m->count < sizeof m->gaps / sizeof m->gaps[0]) {
    m->gaps[m->count++] = d > 0xFFFFFFFFu ? 0xFFFFFFFFu : (uint32_t)d;
  }
  m->console->write(s, n);
  m->last = instret();
}

void log_meter() {
  const size_t n = g_meter.count;
  g_meter.count = 0;
  g_meter.last = 0;
  if (n < 3) return;
  uint32_t* g = g_meter.gaps;
  for (size_t i = 1; i < n; i++) {  // insertion sort: a story is at most a few hundred tokens
    const uint32_t v = g[i];
    size_t j = i;
    for (; j > 0 && g[j - 1] > v; j--) g[j] = g[j - 1];
    g[j] = v;
  }
  char line[200];
  snprintf(line, sizeof line,
           "rv32: instructions per generated token: median %lu (min %lu, max %lu, %lu tokens)",
           (unsigned long)g[n / 2], (unsigned long)g[0], (unsigned long)g[n - 1], (unsigned long)n);
  log_line(nullptr, line);
}

// After a failed boot the console still answers: every line gets the reason, /help the
// command list as well.
void failed_console(Console* con, const char* why) {
  char buf[64], line[256];
  size_t len = 0;
  char reply[480];
  snprintf(reply, sizeof reply, "not ready: %s\n", why);
  while (con->ok()) {
    const size_t n = con->read(buf, sizeof buf, 1000);
    for (size_t i = 0; i < n; i++) {
      if (buf[i] != '\n' && buf[i] != '\r') {
        if (len < sizeof line) line[len++] = buf[i];
        continue;
      }
      char msg[128];
      const Command c = parse_command(line, len, 0, msg, sizeof msg);
      len = 0;
      if (c.kind == CommandKind::kNone) continue;
      if (c.kind == CommandKind::kHelp) con->write(kConsoleHelp, strlen(kConsoleHelp));
      con->write(reply, strlen(reply));
    }
  }
}

int run() {
  static SemihostConsole console;
  static UartLink link(&g_clock);
  const Options o = parse_options(command_line());

  // The image's own length (Image::open wants it exactly); a bad header is left to boot().
  size_t len = kFlashBytes;
  ImageInfo info;
  if (decode_header(kFlash, kFlashBytes, &info) == Status::kOk && info.file_size <= kFlashBytes) {
    len = (size_t)info.file_size;
  }
  Platform p;
  p.image = kFlash;
  p.image_len = len;
  p.link = &link;
  p.clock = &g_clock;
  p.executor = &g_exec;
  p.fast = MemoryRegion{g_fast, kFastBytes};
  p.big = MemoryRegion{g_big, kBigBytes};
  // The ESP32-S3's figures (docs/PLANNER.md), so the emulated board places weights as one
  // would: the linked-in image stands for flash, g_big for PSRAM, g_fast for internal RAM.
  p.speeds = RegionSpeeds{25000000, 85000000, 230000000};
  p.console = &console;
  p.log = log_line;
  p.boot_id = o.boot_id;
  p.name = "rv32-qemu";
  StageOptions so;
  so.head.timeout_ms = o.timeout_ms;
  so.head.window = o.window;
  so.run.prompt_batch = o.batch;

  char msg[400], line[480];
  const uint64_t t0 = instret();
  const Status s = g_stage.boot(p, so, msg, sizeof msg);
  const uint64_t boot_instr = instret() - t0;
  if (s != Status::kOk) {
    snprintf(line, sizeof line, "rv32-qemu: boot failed: %s", msg);
    log_line(nullptr, line);
    snprintf(line, sizeof line, "llmwire rv32-qemu: boot failed: %s\n", msg);
    console.write(line, strlen(line));
    failed_console(&console, msg);
    return 1;
  }
  char desc[200];
  g_stage.describe(desc, sizeof desc);
  const MemoryNeeds used = g_stage.memory_used();
  snprintf(line, sizeof line,
           "llmwire rv32-qemu boot %lu: %s; internal %lu of %lu B, PSRAM %lu of %lu B, "
           "image in flash %lu B; boot %lu instructions",
           (unsigned long)o.boot_id, desc, (unsigned long)used.fast, (unsigned long)kFastBytes,
           (unsigned long)used.big, (unsigned long)kBigBytes, (unsigned long)len,
           (unsigned long)boot_instr);
  log_line(nullptr, line);
  if (!g_stage.is_head()) {
    g_stage.serve(nullptr, nullptr);
    log_line(nullptr, "rv32-qemu: the link is gone");
    return 0;
  }
  g_meter.console = &console;
  g_head.init(&g_stage, emit_metered, &g_meter);
  snprintf(line, sizeof line, "llmwire %s\n", desc);
  console.write(line, strlen(line));
  if (g_head.connect(msg, sizeof msg) != Status::kOk) {
    snprintf(line, sizeof line, "ring: %s\n", msg);
    console.write(line, strlen(line));
  }
  const char* ready = "type a story opening, or /help\n";
  console.write(ready, strlen(ready));
  // HeadConsole::run's line loop, with each line's instruction count logged after it.
  char buf[64], cmd[1100];
  size_t n_cmd = 0;
  bool overflow = false;
  while (console.ok()) {
    const size_t n = console.read(buf, sizeof buf, 1000);
    for (size_t i = 0; i < n; i++) {
      if (buf[i] != '\n' && buf[i] != '\r') {
        if (n_cmd < sizeof cmd) {
          cmd[n_cmd++] = buf[i];
        } else {
          overflow = true;
        }
        continue;
      }
      if (overflow) {
        g_head.print("that line was too long and was dropped\n");
      } else {
        g_head.handle_line(cmd, n_cmd);
        log_meter();
      }
      n_cmd = 0;
      overflow = false;
    }
  }
  return 0;
}

}  // namespace
}  // namespace llmwire::rv32

int main() {
  return llmwire::rv32::run();
}
