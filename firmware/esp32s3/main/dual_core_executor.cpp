#include "dual_core_executor.h"

namespace llmwire::esp32s3 {

bool DualCoreExecutor::start(BaseType_t core, UBaseType_t priority) {
  // The kernels keep their buffers in the memory regions: a small stack is enough.
  constexpr uint32_t kStack = 8192;
  if (xTaskCreatePinnedToCore(helper_main, "llmwire_rows", kStack, this, priority, &helper_,
                              core) != pdPASS) {
    helper_ = nullptr;
    return false;
  }
  return true;
}

void DualCoreExecutor::run(void (*fn)(void*, uint32_t, uint32_t), void* ctx) {
  if (!helper_) {
    fn(ctx, 0, 1);
    return;
  }
  // The notification is the hand-off: FreeRTOS orders these stores before the helper wakes.
  fn_ = fn;
  ctx_ = ctx;
  caller_ = xTaskGetCurrentTaskHandle();
  xTaskNotifyGive(helper_);
  fn(ctx, 0, 2);
  ulTaskNotifyTake(pdTRUE, portMAX_DELAY);  // the helper's half is done
}

void DualCoreExecutor::helper_main(void* arg) {
  DualCoreExecutor* self = static_cast<DualCoreExecutor*>(arg);
  for (;;) {
    ulTaskNotifyTake(pdTRUE, portMAX_DELAY);
    self->fn_(self->ctx_, 1, 2);
    xTaskNotifyGive(self->caller_);
  }
}

}  // namespace llmwire::esp32s3
