// The x86-64 kernel named "avxvnni" (see kernels_x86.h; target flags in CMakeLists.txt).
#define LLMWIRE_X86_NAME matmul_avxvnni
#define LLMWIRE_X86_QNAME quantize_input_avxvnni
#define LLMWIRE_X86_VNNI 2
#include "engine/arch/x86/kernels_x86.h"
