// Matrix-vector kernels. A quantized input vector feeds whole output rows; each row is
// computed by exactly one caller in the fixed order of docs/NUMERICS.md, so how rows are
// split over threads or cores never changes a bit.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "engine/image.h"

namespace llmwire {

// An activation vector quantized to int8 per group (docs/NUMERICS.md).
struct QuantizedInput {
  const int8_t* q = nullptr;      // [groups * group], zero-padded
  const float* scale = nullptr;   // [groups]
  const int32_t* qsum = nullptr;  // [groups] sum of q in the group (lets Q4 skip the -8 offset)
  uint32_t groups = 0;
};

// Quantizes x[0..n) into q/scale/qsum (capacity: ceil(n/group) groups). The definition;
// a kernel's own quantizer (Kernel::quantize) gives the same bits.
using QuantizeFn = void (*)(const float* x, uint32_t n, uint32_t group, int8_t* q, float* scale,
                            int32_t* qsum);
void quantize_input(const float* x, uint32_t n, uint32_t group, int8_t* q, float* scale,
                    int32_t* qsum);

// One matmul's inputs: `batch` vectors (B prompt positions share one pass over the weights).
struct MatmulInput {
  const float* x = nullptr;  // F32 weights: [batch][x_stride] floats
  uint32_t x_stride = 0;
  const QuantizedInput* xq = nullptr;  // Q8/Q4 weights: [batch]
  uint32_t batch = 1;
};

// out[b * out_stride + r] = W[r, :] . input_b for rows r in [r0, r1).
using MatmulFn = void (*)(const TensorView& w, uint32_t group, const MatmulInput& in, float* out,
                          uint32_t out_stride, uint32_t r0, uint32_t r1);

// One head of causal attention over f32 keys and values, in the order of docs/NUMERICS.md:
// position t's key is k + t * stride, its value v + t * stride (floats), t in [0, n);
// att[n] is scratch (left holding the softmax weights); out[hs] receives the head's output.
using AttendFn = void (*)(const float* q, const float* k, const float* v, size_t stride, uint32_t n,
                          uint32_t hs, float* att, float* out);
void attend_reference(const float* q, const float* k, const float* v, size_t stride, uint32_t n,
                      uint32_t hs, float* att, float* out);

// The scalar reference kernel: the definition of the result.
void matmul_reference(const TensorView& w, uint32_t group, const MatmulInput& in, float* out,
                      uint32_t out_stride, uint32_t r0, uint32_t r1);
// Portable kernel tuned for in-order 32-bit cores (aligned word loads, SWAR nibble unpack,
// two rows share each activation load, no 64-bit arithmetic). Any platform, any group size;
// the fallback of every SIMD kernel for shapes it does not handle.
void matmul_scalar32(const TensorView& w, uint32_t group, const MatmulInput& in, float* out,
                     uint32_t out_stride, uint32_t r0, uint32_t r1);

// Kernel selection, the ggml / TFLM way: the reference always ships and defines the result;
// per-architecture kernels replace it by name. Every entry is bit-identical to the reference
// (tests/test_kernels.cpp). On the host the widest kernel the CPU runs is chosen at run time;
// on a board the table holds what the build targets (build-time choice).
struct Kernel {
  const char* name;  // "reference", "scalar32", "avx2", "avxvnni", "avx512vnni", ...
  MatmulFn matmul;
  QuantizeFn quantize;  // its activation quantizer (ggml's per-type traits: quantizer + dot)
  bool (*available)();  // this CPU can run it
  AttendFn attend;      // attention over an f32 KV cache (fp16 / int8 caches: portable code)
};

// Every kernel compiled into this build, preferred first; the reference is the last entry.
const Kernel* kernel_table(uint32_t* count);
// The named kernel if compiled in and runnable here, else nullptr.
const Kernel* find_kernel(const char* name);
// The first runnable kernel of the table.
const Kernel* best_kernel();

// The best kernel for this CPU; bit-identical to the reference (tested).
void matmul_optimized(const TensorView& w, uint32_t group, const MatmulInput& in, float* out,
                      uint32_t out_stride, uint32_t r0, uint32_t r1);

}  // namespace llmwire
