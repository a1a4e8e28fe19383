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
// that would finish later than the others even with no row gets 0 rows. max_rows (empty: no
// limit) caps each worker at the rows its flash partition still holds; the head takes what
// the caps leave.
std::vector<uint32_t> balance_classifier_rows(uint32_t vocab, const std::vector<double>& start_s,
                                              const std::vector<double>& row_s,
                                              const std::vector<uint32_t>& max_rows = {});

// The one choice of classifier slices, made by the planner (Plan::classifier_slices, which
// `plan --split-classifier` shows and `split --classifier-slices auto` writes): rows per stage
// such that the head has every slice's result at the same time. Stage k's result arrives
// k CLASSIFY hops + its rows x row_s[k] + (n - k) CLASS_SLICE hops after the head sent the
// activation, at `baud`. Caps as in balance_classifier_rows.
std::vector<uint32_t> choose_classifier_rows(uint32_t vocab, uint32_t dim, uint32_t baud,
                                             const std::vector<double>& row_s,
                                             const std::vector<uint32_t>& max_rows);

// Wire bytes of one CLASSIFY frame (the final normed activation), and of one worker's reply
// with `rows` rows: its CLASS_SLICE, plus with `logits` its rows in CLASS_LOGITS frames.
uint64_t classify_frame_bytes(uint32_t dim);
// The split sampler's frames (docs/PROTOCOL.md "Sampled classifier split"): SAMPLE_CHAIN,
// SAMPLE_TOP, and a SAMPLE_CANDS with the head's first batch of candidates
// (HeadOptions::sample_batch, at most what a frame of the model holds).
uint64_t sample_chain_frame_bytes();
uint64_t sample_top_frame_bytes();
uint64_t sample_cands_frame_bytes(uint32_t dim);
uint64_t classifier_reply_bytes(uint32_t dim, uint32_t rows, bool logits);

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
