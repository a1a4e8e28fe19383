#include "runtime/stage.h"

#include <stdio.h>
#include <string.h>

namespace llmwire {
namespace {

// Head's token history: the longest prompt plus every position the context can hold.
size_t token_capacity(const ImageInfo& info, const StageOptions& o) {
  const uint32_t seq = o.run.seq_len ? o.run.seq_len : info.config.seq_len;
  return (size_t)o.max_prompt_bytes + 3 + seq;
}

// Byte counts printed without %zu or floats (nano printf): "123456 B".
unsigned long ul(size_t v) {
  return (unsigned long)v;
}

// Takes the role's buffers; shared by memory_needs() and boot() so they cannot disagree.
struct RoleBuffers {
  uint8_t* head_scratch = nullptr;
  uint8_t* sampler_scratch = nullptr;
  int32_t* tokens = nullptr;
  float* spec_logits = nullptr;
  uint8_t* worker_tx = nullptr;
};

void take_role_buffers(const ImageInfo& info, const StageOptions& o, uint32_t seq, Arena* fast,
                       Arena* big, RoleBuffers* b) {
  if (info.stage_index == 0) {
    b->head_scratch = fast->take<uint8_t>(RingHead::scratch_bytes(info, seq, o.run.prompt_batch));
    b->sampler_scratch = big->take<uint8_t>(Sampler::scratch_bytes(info.config.vocab_size));
    b->tokens = big->take<int32_t>(token_capacity(info, o));
    if (o.speculate > 0) {
      b->spec_logits = big->take<float>((size_t)(o.speculate + 1) * info.config.vocab_size);
    }
  } else {
    b->worker_tx = fast->take<uint8_t>(Worker::scratch_bytes(info, o.run.prompt_batch));
  }
}

}  // namespace

MemoryNeeds Stage::memory_needs(const ImageInfo& info, const StageOptions& opts) {
  MemoryNeeds m = Model::memory_needs(info, opts.run);
  Arena fast, big;
  RoleBuffers unused;
  const uint32_t seq = opts.run.seq_len ? opts.run.seq_len : info.config.seq_len;
  take_role_buffers(info, opts, seq, &fast, &big, &unused);
  fast.take<uint8_t>(selftest_bytes(info));
  m.fast += fast.used();
  m.big += big.used();
  return m;
}

// Weight placement, before the model takes its buffers: the copies come first in the regions,
// sized to what memory_needs() leaves free, so every buffer still fits behind them.
Status Stage::place_weights(const MemoryNeeds& need, Arena* fast, Arena* big, char* msg,
                            size_t cap) {
  const Platform& p = platform_;
  if (p.speeds.big <= p.speeds.flash && p.speeds.fast <= p.speeds.flash) return Status::kOk;
  const uint32_t n = image_.tensor_count();
  const bool one_region = big == fast;
  // The arrays below, and alignment slack for every arena take.
  const uint64_t aux = placed_bytes((uint64_t)n * sizeof(PlacementItem)) +
                       placed_bytes((uint64_t)n * sizeof(WeightRegion)) +
                       placed_bytes((uint64_t)n * sizeof(const uint8_t*)) + 4 * Arena::kAlign;
  const uint64_t big_size = one_region ? p.fast.size : p.big.size;
  const uint64_t big_need = one_region ? need.fast + need.big : need.big;
  if (big_size <= big_need + aux) return Status::kOk;  // no room to plan in
  const uint64_t big_free = big_size - big_need - aux;
  const uint64_t fast_free = one_region || p.fast.size <= need.fast + Arena::kAlign
                                 ? 0
                                 : p.fast.size - need.fast - Arena::kAlign;
  PlacementItem* items = big->take<PlacementItem>(n);
  WeightRegion* region = big->take<WeightRegion>(n);
  const uint8_t** at = big->take<const uint8_t*>(n);
  if (!items || !region || !at) return Status::kOk;
  placement_items(image_, items);
  placement_ = choose_placement(items, n, classifier_is_embedding(image_.info()), big_free,
                                fast_free, p.speeds, region);
  if (placement_.tensors == 0) return Status::kOk;
  Status s = copy_placed(image_, region, fast, big, at);
  if (s != Status::kOk) {
    snprintf(msg, cap, "internal error: weight placement ran out of the room it planned");
    return s;
  }
  uint32_t bad = 0;
  s = verify_placed(image_, at, &bad);
  if (s != Status::kOk) {
    const TensorView t = image_.tensor(bad);
    snprintf(msg, cap, "weight placement: tensor %lu (%s) copied into %s reads back wrong. %s",
             (unsigned long)bad, tensor_kind_name(t.kind), weight_region_name(region[bad]),
             status_hint(s));
    return s;
  }
  image_.relocate(at);
  return Status::kOk;
}

void Stage::log(const char* line) const {
  if (platform_.log) platform_.log(platform_.log_ctx, line);
}

Status Stage::boot(const Platform& p, const StageOptions& opts, char* msg, size_t cap) {
  platform_ = p;
  msg[0] = 0;
  if (!p.image || !p.clock || !p.executor) {
    snprintf(msg, cap, "platform incomplete: image, clock and executor are required");
    return Status::kBadArgument;
  }
  Status s = image_.open(p.image, p.image_len, opts.verify_payload);
  if (s != Status::kOk) {
    if (image_.failed_tensor() >= 0) {
      snprintf(msg, cap, "model image: %s (tensor table entry %d). %s", status_message(s),
               image_.failed_tensor(), status_hint(s));
    } else {
      snprintf(msg, cap, "model image: %s. %s", status_message(s), status_hint(s));
    }
    return s;
  }
  const ImageInfo& info = image_.info();
  role_ = info.stage_index == 0 ? Role::kHead : Role::kWorker;
  if (role_ == Role::kHead && (!info.has(kFlagHasTokenizer) || !info.has(kFlagHasEmbedding) ||
                               !info.has(kFlagHasClassifier))) {
    snprintf(msg, cap,
             "the image is stage 0 (the head) but lacks the tokenizer, embedding or classifier: "
             "re-create the stage images with 'llmwire split'");
    return Status::kNotInImage;
  }
  if (opts.run.seq_len > info.config.seq_len) {
    snprintf(msg, cap, "a context of %u tokens was asked for but the image holds %u",
             (unsigned)opts.run.seq_len, (unsigned)info.config.seq_len);
    return Status::kBadArgument;
  }

  // Memory: check both regions up front so the message names the one that is short.
  const MemoryNeeds need = memory_needs(info, opts);
  if (need.fast > p.fast.size || need.big > p.big.size) {
    const bool fast_short = need.fast > p.fast.size;
    snprintf(
        msg, cap,
        "this stage needs %lu B of %s but the board has %lu B: use a shorter context "
        "(llmwire plan --seq / split --seq), fp16 or int8 KV (--kv f16, --kv i8) or more boards",
        ul(fast_short ? need.fast : need.big),
        fast_short ? "fast RAM (internal SRAM)" : "big RAM (PSRAM)",
        ul(fast_short ? p.fast.size : p.big.size));
    return Status::kArenaTooSmall;
  }
  // fast and big may be one region (hosts without PSRAM): then one arena serves both.
  Arena fast(p.fast);
  Arena big_own(p.big);
  Arena* big = (p.big.base == p.fast.base) ? &fast : &big_own;
  if (big == &fast && need.fast + need.big > p.fast.size) {
    snprintf(msg, cap, "this stage needs %lu B of RAM but the board has %lu B",
             ul(need.fast + need.big), ul(p.fast.size));
    return Status::kArenaTooSmall;
  }
  placement_ = PlacementTotals{};
  if (opts.place_weights) {
    s = place_weights(need, &fast, big, msg, cap);
    if (s != Status::kOk) return s;
  }
  s = model_.init(image_, opts.run, &fast, big, p.executor);
  if (s != Status::kOk) {
    snprintf(msg, cap, "cannot set up the model: %s. %s", status_message(s), status_hint(s));
    return s;
  }
  RoleBuffers rb;
  take_role_buffers(info, opts, model_.seq_len(), &fast, big, &rb);
  uint8_t* selftest_scratch = fast.take<uint8_t>(selftest_bytes(info));
  if (fast.overflowed() || big->overflowed() || !selftest_scratch) {
    snprintf(msg, cap, "internal error: the memory plan and the buffers disagree");
    return Status::kArenaTooSmall;
  }
  used_ = MemoryNeeds{fast.used(), big == &fast ? 0 : big->used()};
  if (placement_.tensors) {
    char line[160];
    snprintf(line, sizeof line,
             "weights: %lu tensors copied from flash (%lu B to PSRAM, %lu B to SRAM), CRC verified",
             (unsigned long)placement_.tensors, ul((size_t)placement_.big_bytes),
             ul((size_t)placement_.fast_bytes));
    log(line);
  }

  // Tokenizer (head): read in place; a round trip of a fixed sentence must give it back.
  if (info.has(kFlagHasTokenizer)) {
    s = tokenizer_.init(image_.tokenizer());
    if (s != Status::kOk) {
      snprintf(msg, cap, "the image's tokenizer is unusable: %s", status_message(s));
      return s;
    }
    static const char kCheck[] = "Once upon a time";
    int32_t ids[sizeof kCheck + 3];
    size_t n = 0;
    s = tokenizer_.encode(kCheck, sizeof kCheck - 1, true, false, ids, sizeof ids / sizeof ids[0],
                          &n);
    char back[64];
    size_t len = 0;
    for (size_t i = 1; s == Status::kOk && i < n; i++) {
      const Piece pc = tokenizer_.decode(ids[i - 1], ids[i]);
      if (len + pc.len >= sizeof back) break;
      memcpy(back + len, pc.data, pc.len);
      len += pc.len;
    }
    if (s != Status::kOk || len != sizeof kCheck - 1 || memcmp(back, kCheck, len) != 0) {
      snprintf(msg, cap,
               "tokenizer check failed: \"%s\" does not survive encode and decode (the image's "
               "tokenizer is damaged; re-convert the model)",
               kCheck);
      return Status::kBadTokenizer;
    }
    has_tokenizer_ = true;
  }

  // Kernel self-test on this image's own weights; fall back to the reference on a mismatch.
  Arena st_arena(MemoryRegion{selftest_scratch, selftest_bytes(info)});
  if (!opts.run.reference_kernels) {
    selftest_ = kernel_selftest(image_, matmul_optimized, matmul_reference, &st_arena);
    if (selftest_.ran && !selftest_.identical) {
      char line[160];
      snprintf(line, sizeof line,
               "kernel self-test: the fast kernel differs from the reference at row %u of a "
               "%ux%u matrix; using the reference kernel",
               (unsigned)selftest_.first_bad_row, (unsigned)selftest_.rows,
               (unsigned)selftest_.cols);
      log(line);
      RunOptions ro = opts.run;
      ro.reference_kernels = true;
      Arena fast2(p.fast), big2(p.big);
      Arena* b2 = (p.big.base == p.fast.base) ? &fast2 : &big2;
      s = model_.init(image_, ro, &fast2, b2, p.executor);
      if (s != Status::kOk) {
        snprintf(msg, cap, "cannot set up the model: %s", status_message(s));
        return s;
      }
    }
  }

  if (role_ == Role::kHead) {
    HeadOptions ho = opts.head;
    ho.boot_id = p.boot_id;
    s = head_.init(&model_, p.link, p.clock, ho, rb.head_scratch,
                   RingHead::scratch_bytes(info, model_.seq_len(), model_.prompt_batch()));
    if (s == Status::kOk && info.stage_count > 1 && !p.link) s = Status::kBadArgument;
    if (s != Status::kOk) {
      snprintf(msg, cap, "cannot start the head: %s", status_message(s));
      return s;
    }
    SamplerSettings ss;
    s = sampler_.init(info.config.vocab_size, ss, rb.sampler_scratch,
                      Sampler::scratch_bytes(info.config.vocab_size));
    if (s != Status::kOk) {
      snprintf(msg, cap, "cannot start the sampler: %s", status_message(s));
      return s;
    }
    tokens_ = rb.tokens;
    tokens_cap_ = token_capacity(info, opts);
    spec_logits_ = rb.spec_logits;
    speculate_max_ = rb.spec_logits ? opts.speculate : 0;
  } else {
    if (!p.link) {
      snprintf(msg, cap, "a worker needs a link to the ring");
      return Status::kBadArgument;
    }
    WorkerOptions wo;
    wo.boot_id = p.boot_id;
    wo.protocol_version = opts.protocol_version;
    s = worker_.init(&model_, p.link, p.clock, rb.worker_tx, wo);
    if (s != Status::kOk) {
      snprintf(msg, cap, "cannot start the worker: %s", status_message(s));
      return s;
    }
  }
  return Status::kOk;
}

void Stage::serve(bool (*stop)(void*), void* ctx) {
  if (role_ != Role::kWorker) return;
  while (!(stop && stop(ctx)) && worker_.poll(20)) {
  }
}

void Stage::describe(char* buf, size_t cap) const {
  const ImageInfo& info = image_.info();
  const unsigned first = info.layer_begin, last = info.layer_end ? info.layer_end - 1 : 0;
  const char* role = role_ == Role::kHead ? "head" : "worker";
  char layers[48];
  if (info.layer_begin < info.layer_end) {
    snprintf(layers, sizeof layers, "layers %u-%u of %u", first, last,
             (unsigned)info.config.n_layers);
  } else {
    snprintf(layers, sizeof layers, "no layers (of %u)", (unsigned)info.config.n_layers);
  }
  snprintf(buf, cap, "%s: stage %u of %u, %s%s, model %08lx%08lx, seq %u, KV %s", role,
           (unsigned)info.stage_index, (unsigned)info.stage_count, layers,
           role_ == Role::kHead ? " + embedding + classifier" : "",
           (unsigned long)(info.model_id >> 32), (unsigned long)(info.model_id & 0xFFFFFFFFu),
           (unsigned)model_.seq_len(), kv_type_name(model_.kv_type()));
}

}  // namespace llmwire
