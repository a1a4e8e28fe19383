# The emulated board's firmware: the portable code (engine, link, pipeline, runtime) plus
# src/platform/rv32, bare-metal rv32imafc with picolibc and no libstdc++. Run through
# scripts/build_rv32.sh (make -f src/platform/rv32/rv32.mk BUILD=build-rv32).
BUILD ?= build-rv32
CXX := riscv64-unknown-elf-g++
CC := riscv64-unknown-elf-gcc
ARCH := -march=rv32imafc -mabi=ilp32f
CXXFLAGS := $(ARCH) -O2 -std=c++17 -ffreestanding -fno-exceptions -fno-rtti \
  -fno-threadsafe-statics -fno-use-cxa-atexit -ffp-contract=off -Wall -Wextra -Werror \
  -Wno-missing-field-initializers -ffunction-sections -fdata-sections \
  --specs=picolibc.specs -Isrc -MMD -MP
# Memory map of the virt machine as this board uses it: code and constants at 0x80000000
# (1 MiB), then RAM for .data/.bss (the 512 KiB internal and 8 MiB PSRAM regions are static
# arrays there) and a 32 KiB stack. The model image stays in pflash at 0x20000000.
LDFLAGS := $(ARCH) --specs=picolibc.specs --crt0=hosted -Wl,--gc-sections \
  -Wl,--defsym=__flash=0x80000000 -Wl,--defsym=__flash_size=0x100000 \
  -Wl,--defsym=__ram=0x80100000 -Wl,--defsym=__ram_size=0x900000 \
  -Wl,--defsym=__stack_size=0x8000

SRCS := $(wildcard src/engine/*.cpp src/link/*.cpp src/pipeline/*.cpp src/runtime/*.cpp \
  src/platform/rv32/*.cpp)
OBJS := $(patsubst src/%.cpp,$(BUILD)/obj/%.o,$(SRCS))

$(BUILD)/llmwire-rv32.elf: $(OBJS)
	$(CC) $(LDFLAGS) -Wl,-Map=$(BUILD)/llmwire-rv32.map $(OBJS) -lm -o $@

# bench/emulated_mcu.sh's kernel micro-benchmark: the same objects with its own main.
BENCH_OBJS := $(filter-out $(BUILD)/obj/platform/rv32/main.o,$(OBJS)) \
  $(BUILD)/obj/bench/rv32/kernel_bench.o
$(BUILD)/kernel-bench.elf: $(BENCH_OBJS)
	$(CC) $(LDFLAGS) $(BENCH_OBJS) -lm -o $@

# bench/plan_vs_emulated.sh's per-operation counts for the cost model.
OP_BENCH_OBJS := $(filter-out $(BUILD)/obj/platform/rv32/main.o,$(OBJS)) \
  $(BUILD)/obj/bench/rv32/op_bench.o
$(BUILD)/op-bench.elf: $(OP_BENCH_OBJS)
	$(CC) $(LDFLAGS) $(OP_BENCH_OBJS) -lm -o $@

$(BUILD)/obj/bench/%.o: bench/%.cpp
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) -c $< -o $@

$(BUILD)/obj/%.o: src/%.cpp
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) -c $< -o $@

-include $(OBJS:.o=.d) $(BUILD)/obj/bench/rv32/kernel_bench.d $(BUILD)/obj/bench/rv32/op_bench.d
