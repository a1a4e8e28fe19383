// How the classifier's rows (the vocabulary) are divided over the boards of a ring, and what
// the split costs on the wires: the choice `split --classifier-slices` records in the stage
// images and the planner's cost model can weigh (docs/PROTOCOL.md "Classifier split").
#pragma once

#include <stdint.h>

#include <string>
#include <vector>

namespace llmwire {

// Rows per stage (ring order, head first; they sum to vocab, the head's is >= 1) so that the
// stages finish their slices together: stage k starts start_s[k] after the head has the final
// activation (the CLASSIFY frame's trip to it) and takes row_s[k] seconds per row. A stage
// that would finish later than the others even with no row gets 0 rows.
std::vector<uint32_t> balance_classifier_rows(uint32_t vocab, const std::vector<double>& start_s,
                                              const std::vector<double>& row_s);

// As even as possible: the first vocab % stages stages get one row more.
std::vector<uint32_t> even_classifier_rows(uint32_t vocab, uint32_t stages);

// Bytes a classifier round puts on the wires for one position, summed over the hops: the
// CLASSIFY frame from the head to the last worker, each worker's CLASS_SLICE and, when
// sampling needs every logit (`logits`: a head without a shared classifier), its CLASS_LOGITS
// frames, each counted on every hop it crosses on its way to the head. rows: as above, stage
// 0 first.
uint64_t classifier_round_link_bytes(uint32_t dim, const std::vector<uint32_t>& rows, bool logits);

// "even" or "R0,R1,..." (rows per stage, head first) for `stages` boards and `vocab` rows.
bool parse_classifier_rows(const std::string& text, uint32_t vocab, uint32_t stages,
                           std::vector<uint32_t>* rows, std::string* err);

}  // namespace llmwire
