#include "tools/split.h"

#include "tools/image_writer.h"
#include "tools/selftest_digest.h"

namespace llmwire {

std::string stage_path(const std::string& base, const std::string& dir, uint32_t stage) {
  std::string name = base;
  const size_t slash = name.find_last_of('/');
  if (slash != std::string::npos) name = name.substr(slash + 1);
  const size_t dot = name.find_last_of('.');
  if (dot != std::string::npos && dot > 0) name = name.substr(0, dot);
  std::string out = dir.empty() ? "" : dir + "/";
  if (dir.empty() && slash != std::string::npos) out = base.substr(0, slash + 1);
  return out + name + ".stage" + std::to_string(stage) + ".img";
}

bool split_image(const Image& full, const std::vector<std::pair<uint32_t, uint32_t>>& ranges,
                 uint32_t seq_len, KvType kv, const std::vector<std::string>& paths,
                 std::vector<uint64_t>* sizes, std::string* err,
                 const std::vector<uint32_t>& classifier_rows) {
  const ImageInfo& src = full.info();
  if (src.stage_count != 1) {
    *err = "the input is already a stage image (stage " + std::to_string(src.stage_index) + " of " +
           std::to_string(src.stage_count) + "): split the whole-model image";
    return false;
  }
  if (seq_len > src.config.seq_len) {
    *err = "seq " + std::to_string(seq_len) + " is longer than the model's " +
           std::to_string(src.config.seq_len);
    return false;
  }
  if (ranges.empty() || ranges.size() != paths.size() || ranges.size() > kMaxLayers + 1) {
    *err = "bad number of stages";
    return false;
  }
  sizes->clear();
  const uint32_t n = (uint32_t)ranges.size();
  const bool cls_split = !classifier_rows.empty();
  if (cls_split) {
    uint64_t total = 0;
    for (uint32_t r : classifier_rows) total += r;
    if (n < 2 || classifier_rows.size() != n || classifier_rows[0] == 0 ||
        total != src.config.vocab_size) {
      *err =
          "classifier slices need one row count per board (the head's at least 1) adding up "
          "to the vocabulary's " +
          std::to_string(src.config.vocab_size) + " rows";
      return false;
    }
  }
  // The classifier's rows: its own tensor, or the embedding's when shared.
  TensorView cls;
  if (cls_split &&
      !full.find(src.config.shared_classifier ? TensorKind::kTokEmbedding : TensorKind::kClassifier,
                 kNoLayer, &cls)) {
    *err = "the image has no classifier to split";
    return false;
  }
  uint32_t cls_row = 0;
  // The head's /selftest compares its story with the PC's, told with the stages' settings.
  uint32_t digest = 0;
  if (src.has(kFlagHasTokenizer)) {
    RunOptions run;
    run.seq_len = seq_len;
    run.kv_override = true;
    run.kv_type = kv;
    if (!compute_selftest_digest(full, run, &digest, err)) return false;
  }
  for (uint32_t s = 0; s < n; s++) {
    ImageInfo info = src;
    info.stage_index = s;
    info.stage_count = n;
    info.layer_begin = ranges[s].first;
    info.layer_end = ranges[s].second;
    info.flags = s == 0 ? (kFlagHasTokenizer | kFlagHasEmbedding | kFlagHasClassifier) : 0;
    info.model_id = src.model_id;  // every stage carries the whole model's id
    if (seq_len) info.config.seq_len = seq_len;
    info.kv_type = kv;
    info.selftest_digest = s == 0 ? digest : 0;
    const uint32_t cls_rows = cls_split ? classifier_rows[s] : 0;
    info.cls_row_begin = info.cls_row_end = 0;
    if (cls_rows > 0) {
      info.flags |= kFlagClassifierSlice;
      info.cls_row_begin = cls_row;
      info.cls_row_end = cls_row + cls_rows;
    }
    ImageWriter w(info);
    for (uint32_t i = 0; i < full.tensor_count(); i++) {
      const TensorView t = full.tensor(i);
      const bool layer_kind = t.layer != kNoLayer;
      const bool keep =
          layer_kind ? (t.layer >= info.layer_begin && t.layer < info.layer_end) : s == 0;
      if (!keep) continue;
      if (t.kind == TensorKind::kClassifier && cls_split) {
        // The head's own rows only: the rest live on the workers.
        w.add_raw(t.kind, t.layer, t.dtype, cls_rows, t.cols, t.row_stride, t.row(0));
      } else {
        w.add_raw(t.kind, t.layer, t.dtype, t.rows, t.cols, t.row_stride, t.data);
      }
    }
    if (s > 0 && cls_rows > 0) {
      // A worker's slice, copied from the classifier (or the shared embedding).
      w.add_raw(TensorKind::kClassifier, kNoLayer, cls.dtype, cls_rows, cls.cols, cls.row_stride,
                cls.row(cls_row));
    }
    cls_row += cls_rows;
    if (!w.write(paths[s], err)) return false;
    sizes->push_back(w.info().file_size);
  }
  return true;
}

}  // namespace llmwire
