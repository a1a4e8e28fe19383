// The x86-64 kernel named "avx512vnni" (see kernels_x86.h; target flags in CMakeLists.txt).
#define LLMWIRE_X86_NAME matmul_avx512vnni
#define LLMWIRE_X86_QNAME quantize_input_avx512vnni
#define LLMWIRE_X86_VNNI 1
#include "engine/arch/x86/kernels_x86.h"
