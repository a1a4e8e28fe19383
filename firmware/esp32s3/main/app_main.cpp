// llmwire on an ESP32-S3: one firmware for every board of the ring. Boot finds the stage
// image in the `model` partition, sizes the memory regions from it, brings the portable
// stage runtime up, and then either runs the story console (the head, stage 0) or serves
// the ring (a worker). Every check says what is wrong and what to do, on the console.
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "board_console.h"
#include "dual_core_executor.h"
#include "esp_heap_caps.h"
#include "esp_log.h"
#include "esp_random.h"
#include "esp_timer.h"
#include "freertos/FreeRTOS.h"
#include "freertos/task.h"
#include "model_partition.h"
#include "platform/platform.h"
#include "runtime/head_console.h"
#include "runtime/stage.h"
#include "sdkconfig.h"
#include "uart_link.h"

namespace llmwire::esp32s3 {
namespace {

constexpr const char* kTag = "llmwire";
constexpr uint32_t kInternal = MALLOC_CAP_INTERNAL | MALLOC_CAP_8BIT;
constexpr UBaseType_t kPriority = 5;

class EspClock final : public Clock {
 public:
  uint64_t now_us() override { return (uint64_t)esp_timer_get_time(); }
};

// Long-lived objects are static: off the task stack, no heap.
BoardConsole g_console;
UartLink g_link;
EspClock g_clock;
DualCoreExecutor g_executor;
MappedModel g_model;
Stage g_stage;
HeadConsole g_head;
bool g_console_ok = false;

__attribute__((format(printf, 1, 2))) void say(const char* fmt, ...);

void say(const char* fmt, ...) {
  char buf[400];
  va_list ap;
  va_start(ap, fmt);
  const int n = vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (!g_console_ok) {
    ESP_LOGI(kTag, "%s", buf);
    return;
  }
  if (n > 0) g_console.write(buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
  g_console.write("\n", 1);
}

void log_line(void*, const char* line) {
  ESP_LOGI(kTag, "%s", line);
}

unsigned long kib(size_t bytes) {
  return (unsigned long)(bytes / 1024);
}

// A boot check failed: keep saying why (on every console line and every 10 s) until reset.
[[noreturn]] void halt(const char* what) {
  ESP_LOGE(kTag, "%s", what);
  for (;;) {
    say("error: %s", what);
    say("(fix it and press reset)");
    if (!g_console_ok) {
      vTaskDelay(ticks_for_ms(10000));
      continue;
    }
    char buf[64];
    const uint32_t start = (uint32_t)(esp_timer_get_time() / 1000);
    while ((uint32_t)(esp_timer_get_time() / 1000) - start < 10000) {
      if (g_console.read(buf, sizeof buf, 1000) > 0) break;
    }
  }
}

// Called between the worker's polls: a line typed on a worker's console gets told where the
// story console is (a serial monitor on the wrong board is a common first mistake).
bool worker_console_check(void*) {
  char buf[32];
  const size_t n = g_console_ok ? g_console.read(buf, sizeof buf, 0) : 0;
  bool line = false;
  for (size_t i = 0; i < n; i++) line = line || buf[i] == '\n' || buf[i] == '\r';
  if (line) {
    const ImageInfo& info = g_stage.image().info();
    say("this board is a worker (stage %lu of %lu): type stories on board 0's console (the "
        "head)",
        (unsigned long)info.stage_index, (unsigned long)info.stage_count);
  }
  return false;
}

void stage_task(void*) {
  char msg[400];
  g_console_ok = g_console.open() == ESP_OK;
  if (!g_console_ok) ESP_LOGE(kTag, "console driver did not start: messages go to the log only");
  if (g_console_ok) g_console.write("\n", 1);
  say("llmwire on esp32s3: link UART%d TX GPIO%d RX GPIO%d at %d baud",
      CONFIG_LLMWIRE_LINK_UART_NUM, CONFIG_LLMWIRE_LINK_TX_PIN, CONFIG_LLMWIRE_LINK_RX_PIN,
      CONFIG_LLMWIRE_LINK_BAUD);

  const size_t psram_total = heap_caps_get_total_size(MALLOC_CAP_SPIRAM);
  if (psram_total == 0) {
    say("warning: PSRAM missing: no PSRAM was found or enabled. This firmware expects an "
        "N16R8-type module (8 MB octal PSRAM); quad-PSRAM modules need CONFIG_SPIRAM_MODE_QUAD "
        "(idf.py menuconfig). Trying internal RAM, which fits only tiny models.");
  }

  if (!map_model(&g_model, msg, sizeof msg)) halt(msg);

  // Size both regions from the image before touching anything else.
  StageOptions opts;
  opts.run.min_parallel_macs = CONFIG_LLMWIRE_MIN_PARALLEL_MACS;
  // /spec verifies the current token and up to CONFIG_LLMWIRE_SPECULATE guesses in one pass.
  opts.speculate = CONFIG_LLMWIRE_SPECULATE;
  opts.run.prompt_batch = CONFIG_LLMWIRE_SPECULATE + 1 > CONFIG_LLMWIRE_PROMPT_BATCH
                              ? CONFIG_LLMWIRE_SPECULATE + 1
                              : CONFIG_LLMWIRE_PROMPT_BATCH;
  const MemoryNeeds need = Stage::memory_needs(g_model.info, opts);
  const size_t fast_bytes = region_bytes_for(need.fast);
  // Weight placement (runtime/placement.h) copies hot weights into what the KV cache and the
  // buffers leave of PSRAM: take the largest PSRAM block, keeping 64 KB for the drivers.
  size_t big_bytes = region_bytes_for(need.big);
  if (psram_total) {
    const size_t largest = heap_caps_get_largest_free_block(MALLOC_CAP_SPIRAM);
    if (largest > big_bytes + 64 * 1024) big_bytes = largest - 64 * 1024;
  }
  uint8_t* fast = static_cast<uint8_t*>(heap_caps_malloc(fast_bytes, kInternal));
  if (!fast) {
    snprintf(msg, sizeof msg,
             "this stage needs %lu KB of internal RAM but the largest free block is %lu KB: "
             "use a shorter context (llmwire split --seq) or more boards",
             kib(fast_bytes), kib(heap_caps_get_largest_free_block(kInternal)));
    halt(msg);
  }
  const uint32_t big_caps = psram_total ? MALLOC_CAP_SPIRAM : kInternal;
  uint8_t* big = static_cast<uint8_t*>(heap_caps_malloc(big_bytes, big_caps));
  if (!big) {
    snprintf(msg, sizeof msg,
             "this stage needs %lu KB of %s for the KV cache and logits but the largest free "
             "block is %lu KB: use a shorter context (--seq), fp16 or int8 KV (--kv f16, --kv i8) "
             "or more boards",
             kib(big_bytes), psram_total ? "PSRAM" : "RAM (PSRAM missing)",
             kib(heap_caps_get_largest_free_block(big_caps)));
    halt(msg);
  }

  const esp_err_t link_err =
      g_link.open((uart_port_t)CONFIG_LLMWIRE_LINK_UART_NUM, CONFIG_LLMWIRE_LINK_TX_PIN,
                  CONFIG_LLMWIRE_LINK_RX_PIN, CONFIG_LLMWIRE_LINK_BAUD);
  if (link_err != ESP_OK) {
    snprintf(msg, sizeof msg, "link UART%d did not start (%s): check the pins in menuconfig",
             CONFIG_LLMWIRE_LINK_UART_NUM, esp_err_to_name(link_err));
    halt(msg);
  }
  // This task runs on core 1; the other half of each big matmul runs on core 0.
  if (!g_executor.start(0, kPriority)) say("warning: no helper task on core 0: one core only");

  Platform p;
  p.image = g_model.data;
  p.image_len = g_model.len;
  p.link = &g_link;
  p.clock = &g_clock;
  p.executor = &g_executor;
  p.fast = MemoryRegion{fast, fast_bytes};
  p.big = MemoryRegion{big, big_bytes};
  // Read speeds for weight placement (docs/PLANNER.md): mapped QIO flash ~25 MB/s (measured
  // row reads), octal PSRAM with 64-byte lines ~85 MB/s (measured); internal RAM is sized
  // exactly, so nothing is placed there.
  if (psram_total) p.speeds = RegionSpeeds{25000000, 85000000, 0};
  p.console = &g_console;
  p.log = log_line;
  p.boot_id = esp_random() | 1u;
  p.name = "esp32s3";
  // Checks the payload CRC, the tokenizer (head) and the kernel against the reference.
  if (g_stage.boot(p, opts, msg, sizeof msg) != Status::kOk) halt(msg);

  // The boot banner.
  g_stage.describe(msg, sizeof msg);
  say("%s", msg);
  say("image: %lu KB at flash 0x%lX, read in place", kib(g_model.len),
      (unsigned long)g_model.partition_offset);
  const MemoryNeeds used = g_stage.memory_used();
  say("memory: internal %lu KB used, %lu KB free; PSRAM %lu KB used, %lu KB free of %lu KB",
      kib(used.fast), kib(heap_caps_get_free_size(kInternal)), kib(used.big),
      kib(heap_caps_get_free_size(MALLOC_CAP_SPIRAM)), kib(psram_total));
  const SelfTestResult& st = g_stage.selftest();
  if (!st.ran) {
    say("kernel self-test: no matrix in this image to test");
  } else if (st.identical) {
    say("kernel self-test: ok (%lux%lu rows bit-identical to the reference)",
        (unsigned long)st.rows, (unsigned long)st.cols);
  } else {
    say("kernel self-test: MISMATCH at row %lu: using the reference kernel (slower)",
        (unsigned long)st.first_bad_row);
  }

  if (!g_stage.is_head()) {
    say("worker ready: waiting for the head");
    for (;;) {
      g_stage.serve(worker_console_check, nullptr);  // returns only if the link fails
      ESP_LOGW(kTag, "link stopped; serving again");
      vTaskDelay(ticks_for_ms(100));
    }
  }

  g_head.init(&g_stage);
  if (g_stage.image().info().stage_count > 1) {
    say("ring: looking for %lu boards...", (unsigned long)g_stage.image().info().stage_count);
    if (g_head.connect(msg, sizeof msg) == Status::kOk) {
      say("ring: all %lu boards answered", (unsigned long)g_stage.image().info().stage_count);
    } else {
      say("ring: %s", msg);
      say("(the head tries again with your next story)");
    }
  }
  say("Ready: type a story opening and press Enter (/help for commands)");
  g_head.run(nullptr, nullptr);  // the console never closes on a board
  vTaskDelete(nullptr);
}

}  // namespace
}  // namespace llmwire::esp32s3

extern "C" void app_main(void) {
  // Core 1 runs the stage; core 0 keeps the system tasks and the matmul helper.
  xTaskCreatePinnedToCore(llmwire::esp32s3::stage_task, "llmwire", CONFIG_LLMWIRE_TASK_STACK_SIZE,
                          nullptr, llmwire::esp32s3::kPriority, nullptr, 1);
}
