// The ESP32-S3 PIE matmul kernel ("esp32s3_pie" in the kernel table), built only for the S3
// (components/llmwire/CMakeLists.txt adds this file and LLMWIRE_KERNEL_ESP32S3_PIE there).
// It cannot run on the host or the rv32 board; it is trusted only after the boot-time check
// (engine/kernel_check.h) has compared it with the reference on fixed data, and the stage's
// self-test on the image's own weights comes on top. Any difference: esp32s3_pie_available()
// is false and the table's next entry, scalar32, runs.
//
// What it does: Q4 groups of 32 (the images' default). A group is 16 bytes; byte j holds
// column j in its low nibble and column j + 16 in its high nibble (docs/FORMAT.md), so ONE
// 16-byte load feeds 32 weights:
//   q0 = 16 weight bytes                     ee.vld.128.ip
//   q4 = q0 & 0x0F..  -> columns 0..15       ee.andq
//   q5 = (q0 >> 4) & 0x0F.. -> columns 16..31 ee.vsr.32 (SAR = 4) + ee.andq (the mask drops
//                                             the bits shifted in from the next byte)
//   ACCX += q4 . x[0..16) + q5 . x[16..32)   2 x ee.vmulas.s8.accx (16 int8 MACs each)
//   isum = ACCX - 8 * qsum                   ee.srs.accx, then the usual fold of the -8
// Nibbles 0..15 are valid signed int8, so the signed multiply is exact, and the 40-bit ACCX
// cannot overflow (32 * 15 * 128). The float part is the reference's, per row, in group
// order. Everything else (Q8, F32, other groups, activations not 16-byte aligned) goes to
// scalar32. ee.vld.128 ignores the low 4 address bits, so a weight group that is not
// 16-byte aligned (rows are only 4-byte aligned) is first copied with four word moves.
#include "engine/fp16.h"
#include "engine/kernel_check.h"
#include "engine/kernels.h"

#if !defined(__XTENSA__)
#error "kernels_esp32s3_pie.cpp is for the ESP32-S3 only"
#endif

namespace llmwire {
namespace {

alignas(16) const uint8_t kLowNibbles[16] = {0x0F, 0x0F, 0x0F, 0x0F, 0x0F, 0x0F, 0x0F, 0x0F,
                                             0x0F, 0x0F, 0x0F, 0x0F, 0x0F, 0x0F, 0x0F, 0x0F};

typedef uint32_t aligned_u32 __attribute__((may_alias, aligned(4)));

// Sum over 32 columns of nibble * x, both pointers 16-byte aligned.
inline int32_t q4_group_dot(const uint8_t* w16, const int8_t* x32) {
  int32_t sum;
  uint32_t shift;
  const uint8_t* wp = w16;
  const int8_t* xp = x32;
  const uint8_t* mp = kLowNibbles;
  asm volatile(
      "ee.zero.accx\n\t"
      "ee.vld.128.ip q0, %[w], 0\n\t"
      "ee.vld.128.ip q1, %[m], 0\n\t"
      "ee.vld.128.ip q2, %[x], 16\n\t"
      "ee.vld.128.ip q3, %[x], 0\n\t"
      "ee.andq q4, q0, q1\n\t"
      "ssai 4\n\t"
      "ee.vsr.32 q5, q0\n\t"
      "ee.andq q5, q5, q1\n\t"
      "ee.vmulas.s8.accx q4, q2\n\t"
      "ee.vmulas.s8.accx q5, q3\n\t"
      "movi %[t], 0\n\t"
      "ee.srs.accx %[s], %[t], 0\n\t"
      : [s] "=r"(sum), [t] "=&r"(shift), [w] "+r"(wp), [x] "+r"(xp)
      : [m] "r"(mp)
      : "memory");
  return sum;
}

bool aligned16(const void* p) {
  return ((uintptr_t)p & 15u) == 0;
}

}  // namespace

void matmul_esp32s3_pie(const TensorView& w, uint32_t group, const MatmulInput& in, float* out,
                        uint32_t out_stride, uint32_t r0, uint32_t r1) {
  bool fast = w.dtype == DType::kQ4 && group == 32 && in.xq != nullptr;
  for (uint32_t b = 0; fast && b < in.batch; b++) fast = aligned16(in.xq[b].q);
  if (!fast) {
    matmul_scalar32(w, group, in, out, out_stride, r0, r1);
    return;
  }
  const uint32_t groups = (w.cols + 31) / 32;
  const uint32_t scale_bytes = (groups * 2u + 3u) & ~3u;
  alignas(16) uint32_t copy[4];
  for (uint32_t r = r0; r < r1; r++) {
    const uint8_t* row = w.data + (size_t)r * w.row_stride;
    const uint8_t* data = row + scale_bytes;
    const bool direct = aligned16(data);  // then every group is (16 bytes each)
    for (uint32_t b = 0; b < in.batch; b++) {
      const QuantizedInput& xq = in.xq[b];
      float acc = 0.0f;
      for (uint32_t g = 0; g < groups; g++) {
        const uint8_t* wg = data + (size_t)g * 16;
        if (!direct) {
          const aligned_u32* src = reinterpret_cast<const aligned_u32*>(wg);
          copy[0] = src[0];
          copy[1] = src[1];
          copy[2] = src[2];
          copy[3] = src[3];
          wg = reinterpret_cast<const uint8_t*>(copy);
        }
        const int32_t isum = q4_group_dot(wg, xq.q + (size_t)g * 32) - 8 * xq.qsum[g];
        const uint16_t h = (uint16_t)(row[2 * g] | (row[2 * g + 1] << 8));
        const float p = half_to_float_table(h) * xq.scale[g];
        const float t = (float)isum * p;
        acc = acc + t;
      }
      out[(size_t)b * out_stride + r] = acc;
    }
  }
}

// The table's available(): the fixed-data check, run once (at the first kernel selection,
// during boot on core 0, before the second core's executor starts).
bool esp32s3_pie_available() {
  static int state = -1;  // -1: not checked yet
  if (state < 0) {
    alignas(16) static uint8_t scratch[kKernelCheckScratchBytes];
    const KernelCheckResult r = check_kernel(matmul_esp32s3_pie, scratch, sizeof scratch);
    state = r.identical ? 1 : 0;
  }
  return state == 1;
}

}  // namespace llmwire
