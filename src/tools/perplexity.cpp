#include "tools/perplexity.h"

#include <cmath>
#include <vector>

namespace llmwire {
namespace {

std::vector<std::string> split_documents(const std::string& text) {
  std::vector<std::string> docs;
  std::string cur;
  size_t i = 0;
  while (i <= text.size()) {
    size_t nl = text.find('\n', i);
    if (nl == std::string::npos) nl = text.size();
    std::string line = text.substr(i, nl - i);
    const bool blank = line.find_first_not_of(" \t\r") == std::string::npos;
    if (blank) {
      if (!cur.empty()) docs.push_back(cur);
      cur.clear();
    } else {
      if (!cur.empty()) cur += '\n';
      cur += line;
    }
    i = nl + 1;
  }
  if (!cur.empty()) docs.push_back(cur);
  return docs;
}

// log-softmax pieces in double: max and log-sum-exp.
double log_sum_exp(const float* v, uint32_t n) {
  double m = v[0];
  for (uint32_t i = 1; i < n; i++) m = v[i] > m ? v[i] : m;
  double s = 0;
  for (uint32_t i = 0; i < n; i++) s += std::exp((double)v[i] - m);
  return m + std::log(s);
}

uint32_t arg_max(const float* v, uint32_t n) {
  uint32_t best = 0;
  for (uint32_t i = 1; i < n; i++)
    if (v[i] > v[best]) best = i;
  return best;
}

}  // namespace

bool evaluate_perplexity(HostModel& model, HostModel* reference, const std::string& text,
                         PerplexityResult* out, std::string* err,
                         const std::function<void(uint64_t, uint64_t)>& progress) {
  *out = PerplexityResult{};
  if (!model.has_tokenizer()) {
    *err = "the image has no tokenizer";
    return false;
  }
  const uint32_t vocab = model.model().config().vocab_size;
  if (reference && reference->model().config().vocab_size != vocab) {
    *err = "the reference image has a different vocabulary";
    return false;
  }
  const std::vector<std::string> docs = split_documents(text);
  if (docs.empty()) {
    *err = "the text file has no text";
    return false;
  }
  uint32_t seq = model.seq_len();
  if (reference && reference->seq_len() < seq) seq = reference->seq_len();
  double ref_nll = 0, kl = 0;
  uint64_t agree = 0;
  std::vector<float> ref_logits(vocab);
  for (size_t d = 0; d < docs.size(); d++) {
    std::vector<int32_t> toks(docs[d].size() + 3);
    size_t n = 0;
    Status s = model.tokenizer().encode(docs[d].data(), docs[d].size(), true, false, toks.data(),
                                        toks.size(), &n);
    if (s != Status::kOk) {
      *err = status_message(s);
      return false;
    }
    if (n > seq) n = seq;
    for (size_t pos = 0; pos + 1 < n; pos++) {
      const float* logits = nullptr;
      s = model.forward(toks[pos], (uint32_t)pos, true, &logits);
      if (s != Status::kOk) {
        *err = status_message(s);
        return false;
      }
      const int32_t target = toks[pos + 1];
      const double lse = log_sum_exp(logits, vocab);
      out->nll_sum += lse - logits[target];
      if (reference) {
        const float* rl = nullptr;
        s = reference->forward(toks[pos], (uint32_t)pos, true, &rl);
        if (s != Status::kOk) {
          *err = status_message(s);
          return false;
        }
        const double rlse = log_sum_exp(rl, vocab);
        ref_nll += rlse - rl[target];
        double k = 0;
        for (uint32_t i = 0; i < vocab; i++) {
          const double lp_ref = rl[i] - rlse, lp = logits[i] - lse;
          k += std::exp(lp_ref) * (lp_ref - lp);
        }
        kl += k;
        agree += arg_max(rl, vocab) == arg_max(logits, vocab);
      }
      out->predictions++;
    }
    out->documents++;
    if (progress) progress(d + 1, docs.size());
  }
  if (out->predictions == 0) {
    *err = "the text is too short to score";
    return false;
  }
  const double np = (double)out->predictions;
  out->perplexity = std::exp(out->nll_sum / np);
  if (reference) {
    out->ref_perplexity = std::exp(ref_nll / np);
    out->mean_kl = kl / np;
    out->top1_agreement = agree / np;
  }
  return true;
}

}  // namespace llmwire
