#include "model_partition.h"

#include <stdio.h>

#include "engine/status.h"
#include "esp_err.h"

namespace llmwire::esp32s3 {

bool map_model(MappedModel* out, char* msg, size_t cap) {
  const esp_partition_t* part =
      esp_partition_find_first(ESP_PARTITION_TYPE_DATA, ESP_PARTITION_SUBTYPE_ANY, "model");
  if (!part) {
    snprintf(msg, cap,
             "no 'model' partition: the flash holds another partition table. Flash this "
             "firmware with 'idf.py flash' (it writes firmware/esp32s3/partitions.csv)");
    return false;
  }
  out->partition_offset = part->address;
  out->partition_size = part->size;

  uint8_t header[kHeaderSize];
  esp_err_t err = esp_partition_read(part, 0, header, sizeof header);
  if (err != ESP_OK) {
    snprintf(msg, cap, "cannot read the model partition: %s", esp_err_to_name(err));
    return false;
  }
  bool erased = true;
  for (uint8_t b : header) erased = erased && b == 0xFF;
  if (erased) {
    snprintf(msg, cap,
             "no model: the model partition is empty (new board, or 'Erase All Flash'). Flash "
             "this board's stage image: esptool.py --chip esp32s3 -p PORT write_flash 0x%lX "
             "stageN.bin (llmwire flash-plan prints the commands)",
             (unsigned long)part->address);
    return false;
  }
  const Status s = decode_header(header, sizeof header, &out->info);
  if (s == Status::kBadVersion && out->info.version > kImageVersion) {
    snprintf(msg, cap,
             "the image has format version %lu, newer than this firmware (version %lu): "
             "rebuild and flash the firmware from the same llmwire as the image",
             (unsigned long)out->info.version, (unsigned long)kImageVersion);
    return false;
  }
  if (s == Status::kBadVersion) {
    snprintf(msg, cap,
             "old model: the image has format version %lu, this firmware reads version %lu. "
             "Re-convert and re-split with this llmwire, then re-flash at 0x%lX",
             (unsigned long)out->info.version, (unsigned long)kImageVersion,
             (unsigned long)part->address);
    return false;
  }
  if (s != Status::kOk) {
    snprintf(msg, cap, "corrupt model: %s. %s (esptool write_flash 0x%lX)", status_message(s),
             status_hint(s), (unsigned long)part->address);
    return false;
  }
  if (out->info.file_size > part->size) {
    snprintf(msg, cap,
             "wrong image for this board: the image is %lu bytes but the model partition holds "
             "%lu. Split the model over more boards (llmwire plan / split --board)",
             (unsigned long)out->info.file_size, (unsigned long)part->size);
    return false;
  }
  const void* ptr = nullptr;
  err = esp_partition_mmap(part, 0, (size_t)out->info.file_size, ESP_PARTITION_MMAP_DATA, &ptr,
                           &out->handle);
  if (err != ESP_OK) {
    snprintf(msg, cap,
             "cannot map the model partition (%s): the image and PSRAM share the chip's 32 MB "
             "cache window; use a smaller stage image",
             esp_err_to_name(err));
    return false;
  }
  out->data = static_cast<const uint8_t*>(ptr);
  out->len = (size_t)out->info.file_size;
  return true;
}

}  // namespace llmwire::esp32s3
