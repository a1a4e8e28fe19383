// Instructions per multiply-accumulate of the matmul kernels on the emulated rv32 MCU
// (qemu-system-riscv32 -icount shift=0, so minstret counts retired instructions exactly),
// measured side by side in one run on the same weights and input:
//   plain     the straightforward loop: one nibble unpacked, offset and multiplied per MAC,
//             branch-free fp16 scale (what a first port would write);
//   reference matmul_reference (the definition: adds a software fp16 conversion per group);
//   scalar32  matmul_scalar32, the tuned kernel (aligned words, SWAR pairs, two rows at once).
// Every kernel's output is compared with the reference bit for bit. Output on semihosting
// stderr, one line per kernel and shape; the exit code is 0 only if all outputs agreed.
// Built by bench/emulated_mcu.sh through src/platform/rv32/rv32.mk (target kernel-bench).
#include <stdio.h>
#include <string.h>

#include "bench_matrix.h"
#include "engine/fp16.h"
#include "engine/kernels.h"
#include "platform/rv32/rv32_hw.h"

using namespace llmwire;

namespace {

constexpr uint32_t kRows = 32, kMaxCols = 768, kGroup = 32;
constexpr uint32_t kMaxGroups = kMaxCols / kGroup;
alignas(4) uint8_t g_w[kRows * (kMaxGroups * 2 + kMaxCols)];
int8_t g_q[kMaxCols];
float g_x[kMaxCols], g_s[kMaxGroups], g_out[3][kRows];
int32_t g_qs[kMaxGroups];

uint32_t g_state = 1;
uint32_t next() {
  return bench::xorshift32(&g_state);
}

// The straightforward Q4 loop (byte j: column j low nibble, column j + group/2 high nibble).
void matmul_plain(const TensorView& w, uint32_t group, const MatmulInput& in, float* out,
                  uint32_t out_stride, uint32_t r0, uint32_t r1) {
  const uint32_t groups = (w.cols + group - 1) / group;
  const uint32_t scale_bytes = (groups * 2u + 3u) & ~3u;
  const QuantizedInput& xq = in.xq[0];
  for (uint32_t r = r0; r < r1; r++) {
    const uint8_t* row = w.data + (size_t)r * w.row_stride;
    float acc = 0.0f;
    for (uint32_t g = 0; g < groups; g++) {
      const uint8_t* wq = row + scale_bytes + g * (group / 2);
      const int8_t* x = xq.q + g * group;
      int32_t isum = 0;
      for (uint32_t j = 0; j < group / 2; j++) {
        isum += ((int32_t)(wq[j] & 0x0F) - 8) * x[j];
        isum += ((int32_t)(wq[j] >> 4) - 8) * x[j + group / 2];
      }
      const uint16_t h = (uint16_t)(row[2 * g] | (row[2 * g + 1] << 8));
      acc = acc + (float)isum * (half_to_float_fast(h) * xq.scale[g]);
    }
    out[(size_t)0 * out_stride + r] = acc;
  }
}

bool run_shape(DType dt, uint32_t cols) {
  const uint32_t groups = cols / kGroup;
  const TensorView w = bench::fill_matrix(dt, kRows, cols, kGroup, g_w, &g_state);
  for (uint32_t i = 0; i < cols; i++) g_x[i] = (float)(int32_t)(next() >> 8) / 4194304.0f - 2.0f;
  quantize_input(g_x, cols, kGroup, g_q, g_s, g_qs);
  QuantizedInput xq{g_q, g_s, g_qs, groups};
  MatmulInput in;
  in.xq = &xq;
  struct K {
    const char* name;
    MatmulFn fn;
  };
  const K ks[3] = {{"reference", matmul_reference},
                   {"plain", dt == DType::kQ4 ? matmul_plain : nullptr},
                   {"scalar32", matmul_scalar32}};
  const double macs = (double)kRows * cols;
  uint64_t counts[3] = {0, 0, 0};
  bool ok = true;
  for (int k = 0; k < 3; k++) {
    if (!ks[k].fn) continue;
    const uint64_t t0 = rv32::instret();
    ks[k].fn(w, kGroup, in, g_out[k], kRows, 0, kRows);
    counts[k] = rv32::instret() - t0;
    if (memcmp(g_out[k], g_out[0], sizeof g_out[0]) != 0) ok = false;
  }
  char line[200];
  for (int k = 0; k < 3; k++) {
    if (!ks[k].fn) continue;
    // Hundredths by integer arithmetic (a nano printf has no %f).
    const unsigned per100 = (unsigned)((double)counts[k] * 100.0 / macs + 0.5);
    const int base = counts[1] ? 1 : 0;  // Q8 has no plain loop: relative to the reference
    const unsigned rel = (unsigned)((double)counts[k] * 100.0 / (double)counts[base] + 0.5);
    snprintf(line, sizeof line,
             "kernel-bench %s %ux%u g%u %-9s %lu instructions, %u.%02u per MAC, %u.%02ux %s%s",
             dt == DType::kQ4 ? "q4" : "q8", (unsigned)kRows, (unsigned)cols, (unsigned)kGroup,
             ks[k].name, (unsigned long)counts[k], per100 / 100, per100 % 100, rel / 100, rel % 100,
             ks[base].name, ok ? "" : " MISMATCH");
    rv32::log_line(nullptr, line);
  }
  return ok;
}

}  // namespace

int main() {
  bool ok = true;
  const uint32_t q4_cols[] = {288, 512, 768}, q8_cols[] = {288, 512};
  for (uint32_t cols : q4_cols) ok = run_shape(DType::kQ4, cols) && ok;
  for (uint32_t cols : q8_cols) ok = run_shape(DType::kQ8, cols) && ok;
  rv32::power_off(ok ? 0 : 1);
}
