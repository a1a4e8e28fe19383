// Weight placement: which weight tensors a board copies from flash (the mapped image) into
// faster RAM at boot, hottest first, in the room its regions have left once the KV cache and
// every buffer are reserved. The image records nothing about it: the stage computes it at
// boot, and the planner calls the same function to show it and to count each region's bytes
// in the cost model. A copy is used only after its CRC-32C matches the image's bytes.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "engine/arena.h"
#include "engine/image.h"
#include "engine/status.h"
#include "platform/platform.h"

namespace llmwire {

enum class WeightRegion : uint8_t { kFlash = 0, kBig = 1, kFast = 2 };
const char* weight_region_name(WeightRegion r);

// One tensor as the placement sees it (from an image's table, or the planner's sizes).
struct PlacementItem {
  TensorKind kind = TensorKind::kTokEmbedding;
  uint32_t layer = kNoLayer;
  uint64_t bytes = 0;
};

struct PlacementTotals {
  uint64_t big_bytes = 0, fast_bytes = 0;  // arena bytes taken, alignment included
  uint32_t tensors = 0;                    // tensors placed
};

// Arena bytes one placed tensor takes (its bytes rounded up to the arena's alignment).
uint64_t placed_bytes(uint64_t tensor_bytes);

// Chooses region[i] for each of the n tensors. Hot first: the classifier (the embedding when
// `classifier_is_embedding`: a shared classifier on the head), then the layers' tensors in
// layer order (each read once per token). The embedding as a lookup table (one row a token)
// and the tokenizer stay in flash. Each tensor goes to the fastest region that pays and still
// has room; the others are kept in flash.
PlacementTotals choose_placement(const PlacementItem* items, uint32_t n,
                                 bool classifier_is_embedding, uint64_t big_free,
                                 uint64_t fast_free, const RegionSpeeds& speeds,
                                 WeightRegion* region);

// The image's tensors as placement items (out must hold image.tensor_count()).
void placement_items(const Image& image, PlacementItem* out);
// True when this image's embedding is also its classifier (shared, and the image runs it).
bool classifier_is_embedding(const ImageInfo& info);

// Copies every tensor with region[i] != kFlash into that region's arena and points at[i] at
// the copy (at[i] = nullptr for the others). kArenaTooSmall if an arena runs out.
Status copy_placed(const Image& image, const WeightRegion* region, Arena* fast, Arena* big,
                   const uint8_t** at);
// Checks each copy against the image's bytes (CRC-32C of both); on a mismatch names the
// tensor in *bad and returns kPlacementCorrupt. Only then may the image read the copies.
Status verify_placed(const Image& image, const uint8_t* const* at, uint32_t* bad);

}  // namespace llmwire
