// A prompt chunk through a stage's layers (ACTIVATION_BATCH, docs/PROTOCOL.md "Prompt
// chunks"): the vectors come straight from a received frame and the results go straight into
// the frame to send, so a stage needs no chunk buffer beyond the model's batch rows.
// Portable: no heap, alignment-safe (the frame bytes may be unaligned).
#pragma once

#include <stdint.h>

#include "engine/model.h"

namespace llmwire {

// Runs layers [begin, end) for positions pos .. pos+count-1 whose little-endian vectors are at
// `in` (count x dim floats), in passes of up to model->prompt_batch() positions (bit-identical
// to running them one by one, engine/model.h). Writes the results to `out` (may be null: the
// head keeps only the KV entries).
Status run_chunk(Model* model, uint32_t begin, uint32_t end, uint32_t pos, uint32_t count,
                 const uint8_t* in, uint8_t* out);

// Positions per prompt chunk a stage sends: its batch (RunOptions::prompt_batch), at most what
// one frame carries at the model's width.
uint32_t chunk_positions(uint32_t prompt_batch, uint32_t dim);

}  // namespace llmwire
