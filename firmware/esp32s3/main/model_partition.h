// The stage image, read in place: the `model` data partition (partitions.csv) is mapped into
// the data address space with esp_partition_mmap, so the weights take 0 bytes of RAM.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "engine/image_header.h"
#include "esp_partition.h"

namespace llmwire::esp32s3 {

struct MappedModel {
  const uint8_t* data = nullptr;  // the image (file_size bytes), page aligned
  size_t len = 0;
  uint32_t partition_offset = 0;  // where `model` starts in flash (esptool's write_flash offset)
  uint32_t partition_size = 0;
  ImageInfo info;  // the header, decoded and checked (magic, version, header CRC)
  esp_partition_mmap_handle_t handle = 0;
};

// Finds `model`, checks the image header (empty partition, not an image, old format, damaged
// header, bigger than the partition) and maps exactly the image. On failure writes a sentence
// saying what is wrong and what to do.
bool map_model(MappedModel* out, char* msg, size_t cap);

}  // namespace llmwire::esp32s3
