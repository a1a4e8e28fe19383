#include "runtime/placement.h"

#include <string.h>

#include "engine/crc32c.h"

namespace llmwire {

const char* weight_region_name(WeightRegion r) {
  return r == WeightRegion::kBig ? "PSRAM" : (r == WeightRegion::kFast ? "SRAM" : "flash");
}

uint64_t placed_bytes(uint64_t tensor_bytes) {
  return (tensor_bytes + Arena::kAlign - 1) & ~(uint64_t)(Arena::kAlign - 1);
}

bool classifier_is_embedding(const ImageInfo& info) {
  return info.config.shared_classifier && info.has(kFlagHasClassifier) &&
         info.has(kFlagHasEmbedding);
}

namespace {

bool is_tokenizer(TensorKind k) {
  return k == TensorKind::kTokScores || k == TensorKind::kTokOffsets ||
         k == TensorKind::kTokBytes || k == TensorKind::kTokSorted;
}

// Place tensors of one heat class (classifier, or one layer) in table order.
void place_class(const PlacementItem* items, uint32_t n,
                 bool (*in_class)(const PlacementItem&, uint32_t, bool), uint32_t arg, bool shared,
                 uint64_t* big_free, uint64_t* fast_free, bool big_pays, bool fast_pays,
                 WeightRegion* region, PlacementTotals* t) {
  for (uint32_t i = 0; i < n; i++) {
    if (!in_class(items[i], arg, shared)) continue;
    const uint64_t b = placed_bytes(items[i].bytes);
    if (fast_pays && b <= *fast_free) {
      region[i] = WeightRegion::kFast;
      *fast_free -= b;
      t->fast_bytes += b;
      t->tensors++;
    } else if (big_pays && b <= *big_free) {
      region[i] = WeightRegion::kBig;
      *big_free -= b;
      t->big_bytes += b;
      t->tensors++;
    }
  }
}

bool is_classifier(const PlacementItem& it, uint32_t, bool shared) {
  return it.kind == TensorKind::kClassifier || (shared && it.kind == TensorKind::kTokEmbedding);
}

bool in_layer(const PlacementItem& it, uint32_t layer, bool) {
  return it.layer == layer && it.kind != TensorKind::kTokEmbedding &&
         it.kind != TensorKind::kClassifier && !is_tokenizer(it.kind);
}

}  // namespace

PlacementTotals choose_placement(const PlacementItem* items, uint32_t n,
                                 bool classifier_is_embedding, uint64_t big_free,
                                 uint64_t fast_free, const RegionSpeeds& speeds,
                                 WeightRegion* region) {
  PlacementTotals t;
  for (uint32_t i = 0; i < n; i++) region[i] = WeightRegion::kFlash;
  const bool big_pays = speeds.big > speeds.flash;
  const bool fast_pays = speeds.fast > speeds.flash;
  if (!big_pays && !fast_pays) return t;
  place_class(items, n, is_classifier, 0, classifier_is_embedding, &big_free, &fast_free, big_pays,
              fast_pays, region, &t);
  uint32_t first = kNoLayer, last = 0;
  for (uint32_t i = 0; i < n; i++) {
    if (items[i].layer == kNoLayer) continue;
    if (first == kNoLayer || items[i].layer < first) first = items[i].layer;
    if (items[i].layer > last) last = items[i].layer;
  }
  for (uint32_t l = first; first != kNoLayer && l <= last; l++) {
    place_class(items, n, in_layer, l, false, &big_free, &fast_free, big_pays, fast_pays, region,
                &t);
  }
  return t;
}

void placement_items(const Image& image, PlacementItem* out) {
  for (uint32_t i = 0; i < image.tensor_count(); i++) {
    const TensorView v = image.tensor(i);
    out[i].kind = v.kind;
    out[i].layer = v.layer;
    out[i].bytes = v.bytes();
  }
}

Status copy_placed(const Image& image, const WeightRegion* region, Arena* fast, Arena* big,
                   const uint8_t** at) {
  for (uint32_t i = 0; i < image.tensor_count(); i++) {
    at[i] = nullptr;
    if (region[i] == WeightRegion::kFlash) continue;
    const TensorView v = image.tensor(i);
    Arena* a = region[i] == WeightRegion::kFast ? fast : big;
    uint8_t* dst = a->take<uint8_t>((size_t)v.bytes());
    if (!dst) return Status::kArenaTooSmall;
    memcpy(dst, v.data, (size_t)v.bytes());
    at[i] = dst;
  }
  return Status::kOk;
}

Status verify_placed(const Image& image, const uint8_t* const* at, uint32_t* bad) {
  for (uint32_t i = 0; i < image.tensor_count(); i++) {
    if (!at[i]) continue;
    const TensorView v = image.tensor(i);  // the image's own bytes (not yet relocated)
    if (crc32c(at[i], (size_t)v.bytes()) != crc32c(v.data, (size_t)v.bytes())) {
      *bad = i;
      return Status::kPlacementCorrupt;
    }
  }
  return Status::kOk;
}

}  // namespace llmwire
