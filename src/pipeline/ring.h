// What a stage tells the ring about itself, and the head's check that the ring it found is
// the one its images describe (docs/PROTOCOL.md "Session").
#pragma once

#include <stddef.h>

#include "engine/image.h"
#include "link/messages.h"

namespace llmwire {

constexpr uint16_t kFirmwareVersion = 1;

StageInfo stage_info_for(const ImageInfo& image, uint32_t seq_len, KvType kv, uint32_t boot_id);

// Checks the HELLO list (ring order, head first) against the head's own entry. On failure
// returns false and writes a sentence naming the board and what differs into msg.
bool validate_ring(const StageInfo* stages, size_t count, char* msg, size_t cap);

}  // namespace llmwire
