// Instructions of the per-token operations the cost model counts besides the matmuls, on the
// emulated rv32 MCU (qemu-system-riscv32 -icount shift=0: minstret counts retired instructions
// exactly): the engine's own exp, sin/cos, square root, softmax, activation quantizer,
// sampler and the scalar32 matmul at the shapes of stories260K/15M (for its per-row cost).
// One line per operation on semihosting stderr: "op-bench NAME N instructions for COUNT
// UNIT". bench/plan_vs_emulated.sh prints them; docs/PLANNER.md cites them as the rv32
// figures of tools/cost_model.cpp. Built through src/platform/rv32/rv32.mk (op-bench).
#include <stdio.h>
#include <string.h>

#include "bench_matrix.h"
#include "engine/kernels.h"
#include "engine/mathfn.h"
#include "engine/sampler.h"
#include "platform/rv32/rv32_hw.h"

using namespace llmwire;

namespace {

constexpr uint32_t kMaxRows = 768, kMaxCols = 768, kGroup = 32, kVocab = 512;
alignas(4) uint8_t g_w[kMaxRows * (kMaxCols / kGroup * 2 + kMaxCols)];
int8_t g_q[kMaxCols];
float g_x[kMaxCols], g_s[kMaxCols / kGroup], g_out[kMaxRows], g_v[kVocab];
int32_t g_qs[kMaxCols / kGroup];
alignas(8) uint8_t g_scratch[kVocab * 8 + 8];
volatile float g_sink;

uint32_t g_state = 1;
uint32_t next() {
  return bench::xorshift32(&g_state);
}
float uniform(float lo, float hi) {
  return lo + (hi - lo) * (float)(next() >> 8) / 16777216.0f;
}

void report(const char* name, uint64_t instructions, uint32_t count, const char* unit) {
  char line[160];
  snprintf(line, sizeof line, "op-bench %s %lu instructions for %lu %s", name,
           (unsigned long)instructions, (unsigned long)count, unit);
  rv32::log_line(nullptr, line);
}

void bench_math() {
  constexpr uint32_t n = 512;
  for (uint32_t i = 0; i < n; i++) g_v[i] = uniform(-12.0f, 0.0f);
  uint64_t t0 = rv32::instret();
  float acc = 0;
  for (uint32_t i = 0; i < n; i++) acc += exp_f32(g_v[i]);
  report("exp", rv32::instret() - t0, n, "calls");
  t0 = rv32::instret();
  for (uint32_t i = 0; i < n; i++) {
    float s, c;
    sincos_f32(g_v[i] * 20.0f, &s, &c);
    acc += s + c;
  }
  report("sincos", rv32::instret() - t0, n, "calls");
  t0 = rv32::instret();
  for (uint32_t i = 0; i < n; i++) acc += sqrt_f32(-g_v[i] + 1.0f);
  report("sqrt", rv32::instret() - t0, n, "calls");
  g_sink = acc;
}

void bench_softmax(uint32_t n) {
  for (uint32_t i = 0; i < n; i++) g_v[i] = uniform(-4.0f, 4.0f);
  const uint64_t t0 = rv32::instret();
  softmax(g_v, n);
  report("softmax", rv32::instret() - t0, n, "elements");
}

void bench_quantize(uint32_t n) {
  for (uint32_t i = 0; i < n; i++) g_x[i] = uniform(-2.0f, 2.0f);
  const uint64_t t0 = rv32::instret();
  quantize_input(g_x, n, kGroup, g_q, g_s, g_qs);
  report("quantize", rv32::instret() - t0, n, "elements");
}

// Logits shaped like a small model's (a few strong candidates over a flat tail).
void fill_logits() {
  for (uint32_t i = 0; i < kVocab; i++) g_v[i] = uniform(-6.0f, 2.0f);
  for (uint32_t i = 0; i < 8; i++) g_v[next() % kVocab] = uniform(6.0f, 10.0f);
}

void bench_sampler() {
  SamplerSettings st;
  st.temperature = 1.0f;
  st.topp = 0.9f;
  st.seed = 7;
  Sampler s;
  if (s.init(kVocab, st, g_scratch, sizeof g_scratch) != Status::kOk) return;
  uint64_t total = 0;
  constexpr uint32_t rounds = 8;
  for (uint32_t r = 0; r < rounds; r++) {
    fill_logits();
    const uint64_t t0 = rv32::instret();
    g_sink = (float)s.sample(g_v);
    total += rv32::instret() - t0;
  }
  report("sample-topp", total / rounds, kVocab, "vocabulary rows");
  s.set_temperature(0.0f);
  fill_logits();
  const uint64_t t0 = rv32::instret();
  g_sink = (float)s.sample(g_v);
  report("sample-greedy", rv32::instret() - t0, kVocab, "vocabulary rows");
}

void bench_matmul(DType dt, uint32_t rows, uint32_t cols) {
  const uint32_t groups = (cols + kGroup - 1) / kGroup;
  const TensorView w = bench::fill_matrix(dt, rows, cols, kGroup, g_w, &g_state);
  for (uint32_t i = 0; i < cols; i++) g_x[i] = uniform(-2.0f, 2.0f);
  quantize_input(g_x, cols, kGroup, g_q, g_s, g_qs);
  QuantizedInput xq{g_q, g_s, g_qs, groups};
  MatmulInput in;
  in.xq = &xq;
  const uint64_t t0 = rv32::instret();
  matmul_scalar32(w, kGroup, in, g_out, rows, 0, rows);
  char name[40];
  snprintf(name, sizeof name, "matmul-%s-%ux%u", dt == DType::kQ4 ? "q4" : "q8", (unsigned)rows,
           (unsigned)cols);
  report(name, rv32::instret() - t0, rows * cols, "MACs");
}

}  // namespace

int main() {
  bench_math();
  bench_softmax(32);
  bench_softmax(512);
  bench_quantize(64);
  bench_quantize(172);
  bench_quantize(288);
  bench_sampler();
  const uint32_t shapes[][2] = {{64, 64},  {32, 64},   {172, 64},  {64, 172},
                                {512, 64}, {288, 288}, {768, 288}, {288, 768}};
  const DType types[] = {DType::kQ4, DType::kQ8};
  for (DType dt : types) {
    for (const auto& s : shapes) bench_matmul(dt, s[0], s[1]);
  }
  rv32::power_off(0);
}
