// Every kernel of the table against the scalar reference, bit for bit: each weight type, batch
// sizes 1/2/7/32, group sizes SIMD kernels take (32, 64) and those they hand to scalar32
// (8, 16, 24; scalar32 has its own loop for Q4 groups of 16), column counts that are not a multiple
// of the group, row counts and row ranges that are not a multiple of any interleave, realistic and
// adversarial (raw random) weights. Kernels the CPU cannot run are skipped with a message; the
// narrower ones are all run.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "engine/fp16.h"
#include "engine/kernels.h"
#include "tools/quantize.h"

using namespace llmwire;

namespace {

struct Matrix {
  std::vector<uint8_t> bytes;
  TensorView view;
};

// Realistic rows (quantized from floats) or adversarial ones (random bytes, random finite
// fp16 scales including subnormals, zero and negatives).
Matrix make_matrix(DType dt, uint32_t rows, uint32_t cols, uint32_t group, bool raw,
                   std::mt19937* rng) {
  Matrix m;
  const uint32_t stride = row_stride_bytes(dt, cols, group);
  m.bytes.assign((size_t)rows * stride + 64, 0);
  uint8_t* base = m.bytes.data();
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> row(cols);
  for (uint32_t r = 0; r < rows; r++) {
    uint8_t* out = base + (size_t)r * stride;
    if (!raw || dt == DType::kF32) {
      for (auto& v : row) v = nd(*rng) * (float)(r % 5 + 1);
      encode_row(row.data(), cols, dt, group, out);
      continue;
    }
    const uint32_t groups = (cols + group - 1) / group;
    for (uint32_t g = 0; g < groups; g++) {
      uint16_t h = (uint16_t)((*rng)() & 0xFFFF);
      if (((h >> 10) & 0x1F) == 0x1F) h &= 0x83FF;  // finite: make it a subnormal
      out[2 * g] = (uint8_t)h;
      out[2 * g + 1] = (uint8_t)(h >> 8);
    }
    for (uint32_t i = ((groups * 2 + 3) & ~3u); i < stride; i++) out[i] = (uint8_t)(*rng)();
  }
  m.view.dtype = dt;
  m.view.rows = rows;
  m.view.cols = cols;
  m.view.row_stride = stride;
  m.view.data = base;
  return m;
}

struct Inputs {
  std::vector<float> x;  // [batch][cols]
  std::vector<int8_t> q;
  std::vector<float> s;
  std::vector<int32_t> qs;
  std::vector<QuantizedInput> qi;
  MatmulInput in;
};

// `raw`: every q drawn from [-127, 127] (extremes included) rather than quantized floats.
void make_inputs(uint32_t batch, uint32_t cols, uint32_t group, bool raw, std::mt19937* rng,
                 Inputs* t) {
  const uint32_t groups = (cols + group - 1) / group;
  std::normal_distribution<float> nd(0.0f, 2.0f);
  t->x.resize((size_t)batch * cols);
  for (auto& v : t->x) v = nd(*rng);
  t->q.assign((size_t)batch * groups * group, 0);
  t->s.resize((size_t)batch * groups);
  t->qs.resize((size_t)batch * groups);
  t->qi.resize(batch);
  for (uint32_t b = 0; b < batch; b++) {
    int8_t* q = t->q.data() + (size_t)b * groups * group;
    float* s = t->s.data() + (size_t)b * groups;
    int32_t* qs = t->qs.data() + (size_t)b * groups;
    quantize_input(t->x.data() + (size_t)b * cols, cols, group, q, s, qs);
    if (raw) {
      for (uint32_t g = 0; g < groups; g++) {
        int32_t sum = 0;
        for (uint32_t j = 0; j < group; j++) {
          const uint32_t c = g * group + j;
          const int32_t v = c < cols ? (int32_t)((*rng)() % 255) - 127 : 0;
          q[c] = (int8_t)v;
          sum += v;
        }
        qs[g] = sum;
      }
    }
    t->qi[b] = QuantizedInput{q, s, qs, groups};
  }
  t->in.x = t->x.data();
  t->in.x_stride = cols;
  t->in.xq = t->qi.data();
  t->in.batch = batch;
}

std::vector<const Kernel*> runnable_kernels() {
  uint32_t n = 0;
  const Kernel* table = kernel_table(&n);
  std::vector<const Kernel*> out;
  for (uint32_t i = 0; i < n; i++) {
    if (table[i].available()) {
      out.push_back(&table[i]);
    } else {
      std::printf("kernel %s: this CPU cannot run it, skipped\n", table[i].name);
    }
  }
  return out;
}

}  // namespace

TEST(Kernels, TableHasTheReferenceLastAndUniqueNames) {
  uint32_t n = 0;
  const Kernel* table = kernel_table(&n);
  ASSERT_GE(n, 2u);
  EXPECT_STREQ(table[n - 1].name, "reference");
  EXPECT_EQ(table[n - 1].matmul, &matmul_reference);
  for (uint32_t i = 0; i < n; i++) {
    for (uint32_t j = i + 1; j < n; j++) EXPECT_STRNE(table[i].name, table[j].name);
  }
  EXPECT_NE(find_kernel("scalar32"), nullptr);
  EXPECT_EQ(find_kernel("no-such-kernel"), nullptr);
  EXPECT_EQ(find_kernel(nullptr), nullptr);
  ASSERT_NE(best_kernel(), nullptr);
  EXPECT_TRUE(best_kernel()->available());
  std::printf("best kernel here: %s\n", best_kernel()->name);
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx2")) {
    EXPECT_NE(find_kernel("avx2"), nullptr);
  }
  if (__builtin_cpu_supports("avx512vnni")) {
    EXPECT_NE(find_kernel("avx512vnni"), nullptr);
  }
#endif
}

TEST(Kernels, BranchlessHalfToFloatsAreExactForEveryHalf) {
  for (uint32_t h = 0; h < 0x10000u; h++) {
    const uint32_t a = bits_from_f32(half_to_float((uint16_t)h));
    const uint32_t b = bits_from_f32(half_to_float_fast((uint16_t)h));
    ASSERT_EQ(a, b) << "half 0x" << std::hex << h;
    const uint32_t c = bits_from_f32(half_to_float_table(h));
    ASSERT_EQ(a, c) << "table, half 0x" << std::hex << h;
  }
}

TEST(Kernels, EveryKernelBitIdenticalToReference) {
  std::mt19937 rng(2026);
  const auto kernels = runnable_kernels();
  struct Shape {
    uint32_t rows, cols;
  };
  // 8232 columns: 258 groups of 32, past the 512-bit Q4 path's 256-group stack buffer.
  const Shape shapes[] = {{1, 32}, {7, 31}, {9, 100}, {17, 288}, {23, 200}, {40, 75}, {13, 8232}};
  size_t checked = 0;
  for (DType dt : {DType::kF32, DType::kQ8, DType::kQ4}) {
    for (uint32_t group : {32u, 64u, 8u, 16u, 24u}) {
      if (dt == DType::kF32 && group != 32) continue;  // group is unused for F32
      for (const Shape& sh : shapes) {
        for (bool raw : {false, true}) {
          const Matrix m = make_matrix(dt, sh.rows, sh.cols, group, raw, &rng);
          for (uint32_t batch : {1u, 2u, 7u, 32u}) {
            Inputs in;
            make_inputs(batch, sh.cols, group, raw, &rng, &in);
            const uint32_t stride = sh.rows + 3;  // out rows are not packed
            std::vector<float> want((size_t)batch * stride, -1.0f);
            matmul_reference(m.view, group, in.in, want.data(), stride, 0, sh.rows);
            // A row range that starts and ends off any interleave boundary, too.
            const uint32_t a = sh.rows > 3 ? 1 : 0, z = sh.rows > 3 ? sh.rows - 2 : sh.rows;
            for (const Kernel* k : kernels) {
              std::vector<float> got((size_t)batch * stride, -1.0f);
              k->matmul(m.view, group, in.in, got.data(), stride, 0, sh.rows);
              ASSERT_EQ(0, std::memcmp(want.data(), got.data(), got.size() * 4))
                  << k->name << " " << dtype_name(dt) << " g" << group << " " << sh.rows << "x"
                  << sh.cols << " batch " << batch << (raw ? " raw" : "");
              std::vector<float> part((size_t)batch * stride, -1.0f);
              k->matmul(m.view, group, in.in, part.data(), stride, a, z);
              for (uint32_t b = 0; b < batch; b++) {
                for (uint32_t r = 0; r < stride; r++) {
                  const float expect = r >= a && r < z ? want[(size_t)b * stride + r] : -1.0f;
                  ASSERT_EQ(bits_from_f32(expect), bits_from_f32(part[(size_t)b * stride + r]))
                      << k->name << " rows [" << a << "," << z << ") row " << r;
                }
              }
              checked++;
            }
          }
        }
      }
    }
  }
  std::printf("%zu kernel x case comparisons\n", checked);
}

// The extremes the integer tricks must survive: every nibble 0 or 15 (weights -8 or 7), every
// Q8 weight -128 or 127, activations all +127, all -127 or alternating; large groups.
TEST(Kernels, ExtremeValuesBitIdentical) {
  const auto kernels = runnable_kernels();
  for (DType dt : {DType::kQ4, DType::kQ8}) {
    for (uint32_t group : {8u, 32u, 256u}) {
      const uint32_t rows = 11, cols = 2 * group + 8;
      const uint32_t groups = (cols + group - 1) / group;
      const uint32_t stride = row_stride_bytes(dt, cols, group);
      for (uint8_t fill : {(uint8_t)0x00, (uint8_t)0xFF, (uint8_t)0x80, (uint8_t)0x7F}) {
        std::vector<uint8_t> w((size_t)rows * stride, fill);
        for (uint32_t r = 0; r < rows; r++) {
          for (uint32_t g = 0; g < groups; g++) {
            w[(size_t)r * stride + 2 * g] = 0x00;  // scale 1.0 (0x3C00)
            w[(size_t)r * stride + 2 * g + 1] = 0x3C;
          }
        }
        TensorView tv;
        tv.dtype = dt;
        tv.rows = rows;
        tv.cols = cols;
        tv.row_stride = stride;
        tv.data = w.data();
        for (int pattern = 0; pattern < 3; pattern++) {
          std::vector<int8_t> q((size_t)groups * group, 0);
          std::vector<float> s(groups, 0.5f);
          std::vector<int32_t> qs(groups, 0);
          for (uint32_t c = 0; c < cols; c++) {
            q[c] = (int8_t)(pattern == 0 ? 127 : pattern == 1 ? -127 : (c % 2 ? 127 : -127));
            qs[c / group] += q[c];
          }
          QuantizedInput qi{q.data(), s.data(), qs.data(), groups};
          MatmulInput in;
          in.xq = &qi;
          std::vector<float> want(rows), got(rows);
          matmul_reference(tv, group, in, want.data(), rows, 0, rows);
          for (const Kernel* k : kernels) {
            k->matmul(tv, group, in, got.data(), rows, 0, rows);
            ASSERT_EQ(0, std::memcmp(want.data(), got.data(), rows * 4))
                << k->name << " " << dtype_name(dt) << " g" << group << " fill " << (int)fill
                << " pattern " << pattern;
          }
        }
      }
    }
  }
}

// Every kernel's activation quantizer gives quantize_input's bytes: normal data, halves that
// round to even, values that clamp, zero and all-negative-zero groups, NaN and infinity, a
// tiny amax (127 / amax overflows), groups the SIMD code hands back (8 | group fails) and a
// partial last group.
TEST(Kernels, EveryQuantizerBitIdenticalToQuantizeInput) {
  const auto kernels = runnable_kernels();
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.0f, 3.0f);
  for (uint32_t group : {8u, 24u, 32u, 64u, 12u}) {
    for (uint32_t n : {group, 3 * group, 5 * group + 5, 200u}) {
      for (int pattern = 0; pattern < 6; pattern++) {
        std::vector<float> x(n);
        for (uint32_t i = 0; i < n; i++) {
          switch (pattern) {
            case 0:
              x[i] = nd(rng);
              break;
            case 1:
              x[i] = (float)((int)(rng() % 255) - 127) * 0.5f;
              break;  // many .5 ties
            case 2:
              x[i] = i % 7 == 0 ? NAN : nd(rng);
              break;
            case 3:
              x[i] = i % 9 == 0 ? (i % 2 ? INFINITY : -INFINITY) : nd(rng);
              break;
            case 4:
              x[i] = (i / 8) % 2 ? -0.0f : 0.0f;
              break;
            default:
              x[i] = (float)((int)(rng() % 3) - 1) * 1e-45f;
              break;  // subnormal amax
          }
        }
        const uint32_t groups = (n + group - 1) / group;
        std::vector<int8_t> wq((size_t)groups * group, 99), gq(wq);
        std::vector<float> ws(groups, 9.0f), gs(ws);
        std::vector<int32_t> wsum(groups, 99), gsum(wsum);
        quantize_input(x.data(), n, group, wq.data(), ws.data(), wsum.data());
        for (const Kernel* k : kernels) {
          ASSERT_NE(k->quantize, nullptr) << k->name;
          k->quantize(x.data(), n, group, gq.data(), gs.data(), gsum.data());
          const std::string where = std::string(k->name) + " g" + std::to_string(group) + " n" +
                                    std::to_string(n) + " pattern " + std::to_string(pattern);
          ASSERT_EQ(0, std::memcmp(wq.data(), gq.data(), wq.size())) << where;
          ASSERT_EQ(0, std::memcmp(ws.data(), gs.data(), ws.size() * 4)) << where;
          ASSERT_EQ(wsum, gsum) << where;
        }
      }
    }
  }
}

// Every kernel's attention over an f32 cache equals attend_reference bit for bit: head sizes
// on and off its vector width, position counts around every interleave, a cache stride wider
// than the head, and scores large enough that softmax rounds.
TEST(Kernels, EveryAttentionBitIdenticalToReference) {
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.0f, 3.0f);
  size_t checked = 0;
  for (const Kernel* k : runnable_kernels()) {
    for (uint32_t hs : {8u, 16u, 32u, 48u, 64u, 72u}) {
      for (uint32_t n : {1u, 3u, 15u, 16u, 17u, 33u, 70u}) {
        const size_t stride = (size_t)hs * 3 + 5;
        std::vector<float> q(hs), kv((size_t)n * stride), vv((size_t)n * stride);
        for (float& x : q) x = nd(rng);
        for (float& x : kv) x = nd(rng);
        for (float& x : vv) x = nd(rng);
        std::vector<float> att_want(n), att_got(n), want(hs), got(hs, -1.0f);
        attend_reference(q.data(), kv.data(), vv.data(), stride, n, hs, att_want.data(),
                         want.data());
        k->attend(q.data(), kv.data(), vv.data(), stride, n, hs, att_got.data(), got.data());
        ASSERT_EQ(0, std::memcmp(want.data(), got.data(), hs * 4))
            << k->name << " hs " << hs << " n " << n;
        ASSERT_EQ(0, std::memcmp(att_want.data(), att_got.data(), n * 4))
            << k->name << " hs " << hs << " n " << n;
        checked++;
      }
    }
  }
  EXPECT_GT(checked, 0u);
}
