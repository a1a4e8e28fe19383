// "Run rows on the other core": the stage task (core 1) does half of each big matmul while a
// helper task pinned to core 0 does the other half. Task notifications wake the helper and
// report it done (~34 us round trip, measured), so the engine splits only matrices of at
// least RunOptions::min_parallel_macs.
#pragma once

#include "engine/executor.h"
#include "freertos/FreeRTOS.h"
#include "freertos/task.h"

namespace llmwire::esp32s3 {

class DualCoreExecutor final : public Executor {
 public:
  // Starts the helper on `core`. False (and one worker) if the task cannot be created.
  bool start(BaseType_t core, UBaseType_t priority);
  uint32_t workers() const override { return helper_ ? 2 : 1; }
  void run(void (*fn)(void*, uint32_t, uint32_t), void* ctx) override;

 private:
  static void helper_main(void* arg);

  TaskHandle_t helper_ = nullptr;
  TaskHandle_t caller_ = nullptr;
  void (*fn_)(void*, uint32_t, uint32_t) = nullptr;
  void* ctx_ = nullptr;
};

}  // namespace llmwire::esp32s3
