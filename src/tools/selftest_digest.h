// The digest a board's /selftest is compared with: the PC tells the same fixed greedy story
// (runtime/head_console.h) on a whole-model image with the stage images' settings, and
// `split` (stage 0) and `convert` store it in the image header (docs/FORMAT.md).
#pragma once

#include <stdint.h>

#include <string>

#include "engine/image.h"
#include "engine/model.h"

namespace llmwire {

// Tells the /selftest story on `whole` (a whole-model image with a tokenizer) with the given
// run options (seq_len, KV type) and returns its digest; 0 when the context is too short for
// the story's prompt.
bool compute_selftest_digest(const Image& whole, const RunOptions& run, uint32_t* digest,
                             std::string* err);

// Computes the digest of the whole-model image file at `path` with its own settings and
// writes it into the file's header (header CRC updated; the payload is untouched).
bool stamp_selftest_digest(const std::string& path, uint32_t* digest, std::string* err);

}  // namespace llmwire
