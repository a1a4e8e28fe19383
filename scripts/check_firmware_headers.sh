#!/usr/bin/env bash
# Checks firmware/esp32s3/main against a real ESP-IDF's headers without the Xtensa toolchain:
# a -fsyntax-only pass with the 32-bit RISC-V cross g++ (same type sizes as Xtensa: uint32_t is
# unsigned long) over every platform file, for both console choices. Catches wrong function
# names, argument lists, struct fields and enum values; it does not link or run anything.
#   scripts/check_firmware_headers.sh /path/to/esp-idf       (a checkout of v5.3 or later)
# ESP-IDF's newlib platform headers do not fit picolibc: a few are copied or stubbed.
set -euo pipefail
idf=${1:?usage: $0 /path/to/esp-idf}
cd "$(dirname "$0")/.."
CXX=${RV32_CXX:-riscv64-unknown-elf-g++}
c="$idf/components"
stub=$(mktemp -d)
trap 'rm -rf "$stub"' EXIT
mkdir -p "$stub/sys"
cat > "$stub/sdkconfig.h" <<'CFG'
#pragma once
#define CONFIG_IDF_TARGET "esp32s3"
#define CONFIG_IDF_TARGET_ESP32S3 1
#define CONFIG_IDF_TARGET_ARCH_XTENSA 1
#define CONFIG_FREERTOS_HZ 1000
#define CONFIG_LOG_MAXIMUM_LEVEL 3
#define CONFIG_LOG_DEFAULT_LEVEL 3
#define CONFIG_LOG_TIMESTAMP_SOURCE_RTOS 1
#define CONFIG_FREERTOS_NUMBER_OF_CORES 2
#define CONFIG_SOC_CPU_CORES_NUM 2
#define CONFIG_FREERTOS_MAX_TASK_NAME_LEN 16
#define CONFIG_FREERTOS_ISR_STACKSIZE 1536
#define CONFIG_FREERTOS_IDLE_TASK_STACKSIZE 1536
#define CONFIG_FREERTOS_TIMER_TASK_STACK_DEPTH 2048
#define CONFIG_FREERTOS_TIMER_TASK_PRIORITY 1
#define CONFIG_FREERTOS_TIMER_QUEUE_LENGTH 10
#define CONFIG_FREERTOS_TASK_NOTIFICATION_ARRAY_ENTRIES 1
#define CONFIG_FREERTOS_THREAD_LOCAL_STORAGE_POINTERS 1
#define CONFIG_FREERTOS_QUEUE_REGISTRY_SIZE 0
#define CONFIG_FREERTOS_CHECK_STACKOVERFLOW_CANARY 1
#define CONFIG_FREERTOS_TICK_SUPPORT_SYSTIMER 1
#define CONFIG_FREERTOS_CORETIMER_SYSTIMER_LVL1 1
#define CONFIG_FREERTOS_SYSTICK_USES_SYSTIMER 1
#define CONFIG_FREERTOS_TIMER_SERVICE_TASK_CORE_AFFINITY 0x7FFFFFFF
#define CONFIG_FREERTOS_TIMER_SERVICE_TASK_NAME "Tmr Svc"
#define CONFIG_FREERTOS_USE_TIMERS 1
#define CONFIG_FREERTOS_IDLE_TIME_BEFORE_SLEEP 3
#define CONFIG_ESP_SYSTEM_CHECK_INT_LEVEL_4 1
#define CONFIG_SPIRAM 1
#define CONFIG_ESP_CONSOLE_USB_SERIAL_JTAG 1
#define CONFIG_ESP_TIMER_IMPL_SYSTIMER 1
#define CONFIG_LLMWIRE_LINK_UART_NUM 1
#define CONFIG_LLMWIRE_LINK_TX_PIN 17
#define CONFIG_LLMWIRE_LINK_RX_PIN 18
#define CONFIG_LLMWIRE_LINK_BAUD 460800
#define CONFIG_LLMWIRE_TASK_STACK_SIZE 16384
#define CONFIG_LLMWIRE_MIN_PARALLEL_MACS 65536
#define CONFIG_LLMWIRE_SPECULATE 0
#define CONFIG_LLMWIRE_PROMPT_BATCH 7
#define CONFIG_LLMWIRE_CONSOLE_UART_BAUD 115200
CFG
printf '#pragma once\nstruct _reent { int _errno; };\n' > "$stub/sys/reent.h"
printf '#pragma once\n#include <sys/reent.h>\n' > "$stub/reent.h"
printf '#pragma once\ntypedef struct { int i; } DIR;\nstruct dirent { int d_ino; unsigned char d_type; char d_name[256]; };\n' > "$stub/sys/dirent.h"
printf '#pragma once\n#include <sys/dirent.h>\n' > "$stub/dirent.h"
cp "$c/newlib/platform_include/esp_newlib.h" "$stub/"
cp "$c/newlib/platform_include/sys/termios.h" "$c/newlib/platform_include/sys/poll.h" "$stub/sys/"
inc=(-I"$stub" -Isrc -Ifirmware/esp32s3/main)
for d in esp_common/include esp_rom/include esp_rom/esp32s3/include esp_rom/esp32s3/include/esp32s3 \
         esp_hw_support/include esp_hw_support/include/soc esp_hw_support/include/soc/esp32s3 \
         esp_system/include log/include heap/include esp_timer/include esp_partition/include \
         esp_driver_uart/include esp_driver_usb_serial_jtag/include esp_driver_gpio/include \
         esp_ringbuf/include xtensa/include xtensa/esp32s3/include freertos/FreeRTOS-Kernel/include \
         freertos/FreeRTOS-Kernel/portable/xtensa/include freertos/FreeRTOS-Kernel/portable/xtensa/include/freertos \
         freertos/config/include freertos/config/include/freertos freertos/config/xtensa/include \
         freertos/esp_additions/include freertos/esp_additions/include/freertos soc/include \
         soc/esp32s3/include soc/esp32s3/register hal/include hal/esp32s3/include \
         hal/platform_port/include esp_pm/include vfs/include esp_vfs_console/include \
         spi_flash/include esp_mm/include esp_psram/include; do
  inc+=(-I"$c/$d")
done
flags=(-march=rv32imafc -mabi=ilp32f --specs=picolibc.specs -std=gnu++17 -fsyntax-only
       -fno-exceptions -fno-rtti -Wall -Wextra -Werror -Wno-unused-parameter -Wno-sign-compare
       -D__XTENSA__ -DESP_PLATFORM)
bad=0
for f in firmware/esp32s3/main/*.cpp; do
  for console in "" "-DCONFIG_LLMWIRE_CONSOLE_UART0=1"; do
    [[ -z $console ]] && console=-DCONFIG_LLMWIRE_CONSOLE_USB_SERIAL_JTAG=1
    if ! "$CXX" "${flags[@]}" "$console" "${inc[@]}" "$f"; then
      echo "check_firmware_headers: $f ($console) does not match $idf"; bad=1
    fi
  done
done
# The S3's PIE kernel: C++ and asm operand syntax only (the asm text needs an Xtensa
# assembler, which this pass does not have).
for f in firmware/esp32s3/components/llmwire/pie/*.cpp; do
  if ! "$CXX" "${flags[@]}" -Isrc "$f"; then
    echo "check_firmware_headers: $f does not compile"; bad=1
  fi
done
((bad)) && exit 1
echo "check_firmware_headers: ok — firmware/esp32s3/main against $(git -C "$idf" describe --tags 2>/dev/null || echo "$idf")"
