// Cuts a whole-model image into per-board stage images (ring order: stage 0 is the head and
// holds tokenizer, embedding, final norm, classifier and the last layer range).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "engine/image.h"

namespace llmwire {

// ranges[s] = layers [first, second) of stage s. Writes paths[s]; sizes[s] = bytes written.
// The stage images record seq_len and kv (the KV cache each board will allocate).
// classifier_rows: empty, the head computes the whole classifier; else rows per stage (head
// first, >= 1 for the head, summing to the vocabulary): stage s holds and computes the rows
// after those of stages 0..s-1 (docs/PROTOCOL.md "Classifier split").
bool split_image(const Image& full, const std::vector<std::pair<uint32_t, uint32_t>>& ranges,
                 uint32_t seq_len, KvType kv, const std::vector<std::string>& paths,
                 std::vector<uint64_t>* sizes, std::string* err,
                 const std::vector<uint32_t>& classifier_rows = {});

// "model.img" -> "model.stage0.img", ...
std::string stage_path(const std::string& base, const std::string& dir, uint32_t stage);

}  // namespace llmwire
