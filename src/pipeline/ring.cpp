#include "pipeline/ring.h"

#include <stdio.h>

namespace llmwire {

StageInfo stage_info_for(const ImageInfo& image, uint32_t seq_len, KvType kv, uint32_t boot_id) {
  StageInfo s;
  s.protocol_version = kMessageVersion;
  s.firmware_version = kFirmwareVersion;
  s.boot_id = boot_id;
  s.model_id = image.model_id;
  s.stage_index = image.stage_index;
  s.stage_count = image.stage_count;
  s.layer_begin = image.layer_begin;
  s.layer_end = image.layer_end;
  s.dim = image.config.dim;
  s.n_layers = image.config.n_layers;
  s.seq_len = seq_len;
  s.kv_type = (uint32_t)kv;
  return s;
}

namespace {

// Layers as the CLI prints them: inclusive "3-4", or "no layers".
const char* layer_text(uint32_t begin, uint32_t end, char* buf, size_t cap) {
  if (end <= begin) return "no layers";
  snprintf(buf, cap, "layers %u-%u", (unsigned)begin, (unsigned)(end - 1));
  return buf;
}

}  // namespace

bool validate_ring(const StageInfo* st, size_t count, char* msg, size_t cap) {
  const StageInfo& head = st[0];
  if (count != head.stage_count) {
    snprintf(msg, cap, "the ring has %u board(s) but the head's image is stage 0 of %u: %s",
             (unsigned)count, (unsigned)head.stage_count,
             count < head.stage_count
                 ? "a board is missing from the ring (check its power and TX->RX wiring)"
                 : "there are more boards than stage images (flash the images of one split)");
    return false;
  }
  for (unsigned k = 1; k < count; k++) {
    const StageInfo& s = st[k];
    if (s.protocol_version != kMessageVersion) {
      snprintf(msg, cap,
               "the board at ring position %u speaks protocol v%u (firmware v%u), the head v%u: "
               "flash the same llmwire firmware on every board",
               k, (unsigned)s.protocol_version, (unsigned)s.firmware_version,
               (unsigned)kMessageVersion);
      return false;
    }
    if (s.model_id != head.model_id) {
      snprintf(msg, cap,
               "the board at ring position %u holds a different model (id %08x%08x, the head has "
               "%08x%08x): flash the stage images cut from one model by 'llmwire split'",
               k, (unsigned)(s.model_id >> 32), (unsigned)s.model_id,
               (unsigned)(head.model_id >> 32), (unsigned)head.model_id);
      return false;
    }
    if (s.stage_index != k || s.stage_count != head.stage_count) {
      snprintf(msg, cap,
               "the board at ring position %u holds the image for stage %u of %u: the boards are "
               "wired in the wrong order or flashed with the wrong images (stage k's TX must go to "
               "stage k+1's RX)",
               k, (unsigned)s.stage_index, (unsigned)s.stage_count);
      return false;
    }
    if (s.dim != head.dim || s.n_layers != head.n_layers) {
      snprintf(msg, cap, "the board at ring position %u has dim %u / %u layers, the head %u / %u",
               k, (unsigned)s.dim, (unsigned)s.n_layers, (unsigned)head.dim,
               (unsigned)head.n_layers);
      return false;
    }
    // Every stage must hold the same positions with the same KV arithmetic, or the ring
    // would stop early or compute something no single image does.
    if (s.kv_type != head.kv_type) {
      snprintf(msg, cap,
               "the board at ring position %u keeps its KV cache in %s, the head in %s: the "
               "images come from different splits; flash the stage images of one split",
               k, kv_type_name((KvType)s.kv_type), kv_type_name((KvType)head.kv_type));
      return false;
    }
    if (s.seq_len != head.seq_len) {
      snprintf(msg, cap,
               "the board at ring position %u holds %u positions, the head %u: the images come "
               "from different splits (--seq); flash the stage images of one split",
               k, (unsigned)s.seq_len, (unsigned)head.seq_len);
      return false;
    }
    const uint32_t expect_begin = k == 1 ? 0 : st[k - 1].layer_end;
    if (s.layer_begin != expect_begin || s.layer_end < s.layer_begin) {
      char held[40];
      snprintf(msg, cap, "stage %u holds %s but should start at layer %u", k,
               layer_text(s.layer_begin, s.layer_end, held, sizeof held), (unsigned)expect_begin);
      return false;
    }
  }
  const uint32_t before_head = count > 1 ? st[count - 1].layer_end : 0;
  if (head.layer_begin != before_head || head.layer_end != head.n_layers) {
    char held[40];
    snprintf(msg, cap, "the head holds %s but the workers stop before layer %u of %u",
             layer_text(head.layer_begin, head.layer_end, held, sizeof held), (unsigned)before_head,
             (unsigned)head.n_layers);
    return false;
  }
  return true;
}

}  // namespace llmwire
