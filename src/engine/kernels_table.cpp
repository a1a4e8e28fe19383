// The kernel table: which kernels this build holds and which one runs. Per-architecture
// kernels live in src/engine/arch/<arch>/ and are compiled only for their target; each is an
// entry here, found by name. A board build lists its kernel at build time (the ESP32-S3's PIE
// kernel will be an entry guarded by LLMWIRE_KERNEL_ESP32S3_PIE, ahead of scalar32).
#include <string.h>

#include "engine/kernels.h"

namespace llmwire {

#if defined(LLMWIRE_X86_KERNELS)
// src/engine/arch/x86/: compiled with their own target flags, run only when the CPU has them.
void matmul_avx2(const TensorView&, uint32_t, const MatmulInput&, float*, uint32_t, uint32_t,
                 uint32_t);
void matmul_avxvnni(const TensorView&, uint32_t, const MatmulInput&, float*, uint32_t, uint32_t,
                    uint32_t);
void matmul_avx512vnni(const TensorView&, uint32_t, const MatmulInput&, float*, uint32_t, uint32_t,
                       uint32_t);
#endif
#if defined(LLMWIRE_KERNEL_ESP32S3_PIE)
void matmul_esp32s3_pie(const TensorView&, uint32_t, const MatmulInput&, float*, uint32_t, uint32_t,
                        uint32_t);
bool esp32s3_pie_available();  // the boot-time self-test against the reference passed
#endif

namespace {

bool always() {
  return true;
}

#if defined(LLMWIRE_X86_KERNELS)
// __builtin_cpu_supports reads CPUID (and the OS's saved-state mask for AVX-512): no OS call.
bool has_avx2() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c");
}
bool has_avx512vnni() {
  __builtin_cpu_init();
  return has_avx2() && __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512vl") &&
         __builtin_cpu_supports("avx512bw");
}
bool has_avxvnni() {
  __builtin_cpu_init();
  return has_avx2() && __builtin_cpu_supports("avxvnni");
}
#endif

const Kernel kTable[] = {
#if defined(LLMWIRE_KERNEL_ESP32S3_PIE)
    {"esp32s3_pie", matmul_esp32s3_pie, esp32s3_pie_available},
#endif
#if defined(LLMWIRE_X86_KERNELS)
    {"avx512vnni", matmul_avx512vnni, has_avx512vnni},
    {"avxvnni", matmul_avxvnni, has_avxvnni},
    {"avx2", matmul_avx2, has_avx2},
#endif
    {"scalar32", matmul_scalar32, always},
    {"reference", matmul_reference, always},
};
constexpr uint32_t kCount = sizeof(kTable) / sizeof(kTable[0]);

}  // namespace

const Kernel* kernel_table(uint32_t* count) {
  *count = kCount;
  return kTable;
}

const Kernel* find_kernel(const char* name) {
  if (name == nullptr) return nullptr;
  for (const Kernel& k : kTable) {
    if (strcmp(k.name, name) == 0) return k.available() ? &k : nullptr;
  }
  return nullptr;
}

const Kernel* best_kernel() {
  for (const Kernel& k : kTable) {
    if (k.available()) return &k;
  }
  return &kTable[kCount - 1];
}

void matmul_optimized(const TensorView& w, uint32_t group, const MatmulInput& in, float* out,
                      uint32_t out_stride, uint32_t r0, uint32_t r1) {
  best_kernel()->matmul(w, group, in, out, out_stride, r0, r1);
}

}  // namespace llmwire
