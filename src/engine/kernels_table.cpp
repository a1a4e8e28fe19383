// The kernel table: which kernels this build holds and which one runs. Per-architecture
// kernels live in src/engine/arch/<arch>/ and are compiled only for their target; each is an
// entry here, found by name. A board build lists its kernel at build time (the ESP32-S3's PIE
// kernel will be an entry guarded by LLMWIRE_KERNEL_ESP32S3_PIE, ahead of scalar32).
#include <string.h>

#if defined(LLMWIRE_X86_KERNELS)
#include <cpuid.h>
#endif

#include "engine/kernels.h"

namespace llmwire {

#if defined(LLMWIRE_X86_KERNELS)
// src/engine/arch/x86/: compiled with their own target flags, run only when the CPU has them.
void quantize_input_avx2(const float*, uint32_t, uint32_t, int8_t*, float*, int32_t*);
void quantize_input_avxvnni(const float*, uint32_t, uint32_t, int8_t*, float*, int32_t*);
void quantize_input_avx512vnni(const float*, uint32_t, uint32_t, int8_t*, float*, int32_t*);
void matmul_avx2(const TensorView&, uint32_t, const MatmulInput&, float*, uint32_t, uint32_t,
                 uint32_t);
void matmul_avxvnni(const TensorView&, uint32_t, const MatmulInput&, float*, uint32_t, uint32_t,
                    uint32_t);
void matmul_avx512vnni(const TensorView&, uint32_t, const MatmulInput&, float*, uint32_t, uint32_t,
                       uint32_t);
void attend_avx512vnni(const float*, const float*, const float*, size_t, uint32_t, uint32_t, float*,
                       float*);
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
// CPUID and XGETBV directly (no OS call, and GCC and clang agree on them, unlike the feature
// names __builtin_cpu_supports accepts): the CPU must have the instructions and the OS must
// save the wider registers.
struct X86Features {
  bool avx2 = false, f16c = false, avxvnni = false, avx512 = false;
};
X86Features x86_features() {
  X86Features f;
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool osxsave = (c >> 27) & 1, avx = (c >> 28) & 1;
  f.f16c = (c >> 29) & 1;
  if (!osxsave || !avx) return f;
  unsigned xlo = 0, xhi = 0;
  __asm__ volatile("xgetbv" : "=a"(xlo), "=d"(xhi) : "c"(0));
  const bool ymm = (xlo & 0x6) == 0x6, zmm = (xlo & 0xE6) == 0xE6;
  if (!ymm || __get_cpuid_max(0, nullptr) < 7) return f;
  __cpuid_count(7, 0, a, b, c, d);
  f.avx2 = (b >> 5) & 1;
  const bool avx512f = (b >> 16) & 1, avx512bw = (b >> 30) & 1, avx512vl = (b >> 31) & 1;
  const bool avx512vnni = (c >> 11) & 1;
  f.avx512 = zmm && avx512f && avx512bw && avx512vl && avx512vnni;
  __cpuid_count(7, 1, a, b, c, d);
  f.avxvnni = (a >> 4) & 1;
  return f;
}
bool has_avx2() {
  const X86Features f = x86_features();
  return f.avx2 && f.f16c;
}
bool has_avx512vnni() {
  return has_avx2() && x86_features().avx512;
}
bool has_avxvnni() {
  return has_avx2() && x86_features().avxvnni;
}
#endif

const Kernel kTable[] = {
#if defined(LLMWIRE_KERNEL_ESP32S3_PIE)
    {"esp32s3_pie", matmul_esp32s3_pie, quantize_input, esp32s3_pie_available, attend_reference},
#endif
#if defined(LLMWIRE_X86_KERNELS)
    {"avx512vnni", matmul_avx512vnni, quantize_input_avx512vnni, has_avx512vnni, attend_avx512vnni},
    {"avxvnni", matmul_avxvnni, quantize_input_avxvnni, has_avxvnni, attend_reference},
    {"avx2", matmul_avx2, quantize_input_avx2, has_avx2, attend_reference},
#endif
    {"scalar32", matmul_scalar32, quantize_input, always, attend_reference},
    {"reference", matmul_reference, quantize_input, always, attend_reference},
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
