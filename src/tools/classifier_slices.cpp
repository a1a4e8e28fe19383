#include "tools/classifier_slices.h"

#include <stdlib.h>

#include <algorithm>

#include "link/frame.h"
#include "link/messages.h"
#include "pipeline/head.h"
#include "pipeline/split_sampler.h"

namespace llmwire {

std::vector<uint32_t> balance_classifier_rows(uint32_t vocab, const std::vector<double>& start_s,
                                              const std::vector<double>& row_s,
                                              const std::vector<uint32_t>& max_rows) {
  const size_t n = start_s.size();
  std::vector<uint32_t> rows(n, 0);
  if (n == 0 || row_s.size() != n || (!max_rows.empty() && max_rows.size() != n)) return rows;
  // Finish time T with sum_k min(cap_k, max(0, (T - start_k) / row_k)) = vocab, by bisection.
  auto rows_at = [&](double t, size_t k) {
    double r = row_s[k] > 0 ? (t - start_s[k]) / row_s[k] : 0;
    if (k > 0 && !max_rows.empty() && r > max_rows[k]) r = max_rows[k];
    return r > 0 ? r : 0.0;
  };
  double lo = 0, hi = 1;
  for (size_t k = 0; k < n; k++) {
    const double end = start_s[k] + (row_s[k] > 0 ? row_s[k] : 0) * vocab;
    if (end > hi) hi = end;
  }
  for (int it = 0; it < 200; it++) {
    const double mid = (lo + hi) / 2;
    double total = 0;
    for (size_t k = 0; k < n; k++) total += rows_at(mid, k);
    (total < vocab ? lo : hi) = mid;
  }
  uint32_t given = 0;
  for (size_t k = 0; k < n; k++) {
    rows[k] = (uint32_t)rows_at(hi, k);
    if (rows[k] > vocab - given) rows[k] = vocab - given;
    given += rows[k];
  }
  rows[0] += vocab - given;  // rounding: the head, which starts first, takes the rest
  if (rows[0] == 0 && vocab > 0) {
    for (size_t k = n; k-- > 1;) {
      if (rows[k] > 0) {
        rows[k]--;
        rows[0]++;
        break;
      }
    }
  }
  return rows;
}

uint64_t classify_frame_bytes(uint32_t dim) {
  return kFrameOverhead + kClassifyHeaderSize + 4ull * dim;
}

uint64_t sample_chain_frame_bytes() {
  return kFrameOverhead + kSampleChainSize;
}

uint64_t sample_top_frame_bytes() {
  return kFrameOverhead + kSampleTopSize;
}

uint64_t sample_cands_frame_bytes(uint32_t dim) {
  uint32_t k = HeadOptions{}.sample_batch;
  k = std::min(k, std::min(sample_cands_max_count(dim), kSampleTopMax));
  return kFrameOverhead + kSampleCandsHeaderSize + 8ull * k;
}

uint64_t classifier_reply_bytes(uint32_t dim, uint32_t rows, bool logits) {
  uint64_t reply = kFrameOverhead + kClassSliceSize;
  if (logits && rows) {
    const uint32_t chunk = class_logits_max_count(dim) ? class_logits_max_count(dim) : 1;
    const uint64_t frames = (rows + chunk - 1) / chunk;
    reply += frames * (kFrameOverhead + kClassLogitsHeaderSize) + 4ull * rows;
  }
  return reply;
}

std::vector<uint32_t> choose_classifier_rows(uint32_t vocab, uint32_t dim, uint32_t baud,
                                             const std::vector<double>& row_s,
                                             const std::vector<uint32_t>& max_rows) {
  const size_t n = row_s.size();
  const double bit_s = baud ? 10.0 / baud : 0.0;  // 8N1
  const double hop_x = classify_frame_bytes(dim) * bit_s;
  const double hop_r = classifier_reply_bytes(dim, 0, false) * bit_s;
  std::vector<double> start(n, 0.0);
  for (size_t k = 1; k < n; k++) start[k] = k * hop_x + (n - k) * hop_r;
  return balance_classifier_rows(vocab, start, row_s, max_rows);
}

std::vector<uint32_t> even_classifier_rows(uint32_t vocab, uint32_t stages) {
  std::vector<uint32_t> rows(stages, stages ? vocab / stages : 0);
  for (uint32_t k = 0; stages && k < vocab % stages; k++) rows[k]++;
  return rows;
}

uint64_t classifier_round_link_bytes(uint32_t dim, const std::vector<uint32_t>& rows, bool logits) {
  const uint64_t n = rows.size();
  if (n < 2) return 0;
  uint64_t bytes = (n - 1) * classify_frame_bytes(dim);
  for (uint64_t k = 1; k < n; k++) {
    bytes += classifier_reply_bytes(dim, rows[k], logits) * (n - k);  // hops k -> ... -> head
  }
  return bytes;
}

bool parse_classifier_rows(const std::string& text, uint32_t vocab, uint32_t stages,
                           std::vector<uint32_t>* rows, std::string* err) {
  if (stages < 2) {
    *err = "a classifier split needs at least 2 boards";
    return false;
  }
  if (text == "even") {
    *rows = even_classifier_rows(vocab, stages);
    return true;
  }
  rows->clear();
  uint64_t total = 0;
  size_t at = 0;
  while (at <= text.size()) {
    const size_t comma = text.find(',', at);
    const std::string item = text.substr(at, comma == std::string::npos ? comma : comma - at);
    char* end = nullptr;
    const unsigned long v = item.empty() ? 0 : strtoul(item.c_str(), &end, 10);
    if (item.empty() || *end != 0 || item[0] == '-' || v > vocab) {
      *err = "classifier slices '" + text + "': '" + item + "' is not a row count 0.." +
             std::to_string(vocab);
      return false;
    }
    rows->push_back((uint32_t)v);
    total += v;
    if (comma == std::string::npos) break;
    at = comma + 1;
  }
  if (rows->size() != stages || total != vocab || (*rows)[0] == 0) {
    *err = "classifier slices '" + text + "' must give " + std::to_string(stages) +
           " row counts (head first, the head's at least 1) that add up to the vocabulary's " +
           std::to_string(vocab) + " rows";
    return false;
  }
  return true;
}

}  // namespace llmwire
