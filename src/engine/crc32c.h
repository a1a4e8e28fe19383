// CRC-32C (Castagnoli), reflected, init and xorout 0xFFFFFFFF. Used for image checksums.
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace llmwire {

// Continue a CRC: crc32c_update(0, ...) starts one; the result of one call feeds the next.
uint32_t crc32c_update(uint32_t crc, const void* data, size_t len);
inline uint32_t crc32c(const void* data, size_t len) {
  return crc32c_update(0, data, len);
}

}  // namespace llmwire
