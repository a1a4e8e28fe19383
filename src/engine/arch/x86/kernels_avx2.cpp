// The x86-64 kernel named "avx2" (see kernels_x86.h; target flags in CMakeLists.txt).
#define LLMWIRE_X86_NAME matmul_avx2
#define LLMWIRE_X86_QNAME quantize_input_avx2
#define LLMWIRE_X86_VNNI 0
#include "engine/arch/x86/kernels_x86.h"
