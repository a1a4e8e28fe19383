#include "tools/stage_runner.h"

#include "pipeline/worker.h"
#include "platform/host/host_clock.h"

namespace llmwire {

bool run_worker(HostModel& model, ByteLink* link, uint32_t boot_id, const std::atomic<bool>* stop,
                std::string* err, uint16_t protocol_version) {
  const ImageInfo& info = model.model().info();
  if (info.stage_index == 0) {
    *err = "this is the head's image (stage 0 of " + std::to_string(info.stage_count) +
           "); a worker needs a stage 1.." + std::to_string(info.stage_count - 1) + " image";
    return false;
  }
  HostClock clock;
  std::vector<uint8_t> tx(kMaxFrameSize);
  Worker w;
  WorkerOptions o;
  o.boot_id = boot_id;
  o.protocol_version = protocol_version;
  if (w.init(&model.model(), link, &clock, tx.data(), o) != Status::kOk) {
    *err = "cannot start the worker";
    return false;
  }
  while (!(stop && stop->load()) && w.poll(20)) {
  }
  return true;
}

bool run_head(HostModel& hm, ByteLink* link, const HeadRunOptions& opts, HeadRunResult* out,
              void (*emit)(void*, const char*, size_t), void* emit_ctx, std::string* err,
              std::string* hint) {
  Model& model = hm.model();
  const ImageInfo& info = model.info();
  if (info.stage_index != 0 || !hm.has_tokenizer()) {
    *err = "this is a worker's image (stage " + std::to_string(info.stage_index) + " of " +
           std::to_string(info.stage_count) + "); the head needs the stage 0 image";
    *hint = "give the head the image whose name ends in .stage0.img";
    return false;
  }
  HostClock clock;
  std::vector<uint8_t> scratch(RingHead::scratch_bytes(info, model.seq_len()));
  RingHead head;
  Status s = head.init(&model, link, &clock, opts.head, scratch.data(), scratch.size());
  if (s != Status::kOk) {
    *err = status_message(s);
    return false;
  }
  char msg[512] = {};
  s = head.discover(msg, sizeof msg);
  if (s != Status::kOk) {
    out->counters = head.counters();  // the failure summary shows the discovery attempts
    out->link = head.link_counters();
    *err = msg;
    *hint = status_hint(s);
    return false;
  }
  std::vector<uint8_t> sampler_mem(Sampler::scratch_bytes(info.config.vocab_size));
  Sampler sampler;
  SamplerSettings ss{opts.temperature, opts.topp, opts.seed};
  sampler.init(info.config.vocab_size, ss, sampler_mem.data(), sampler_mem.size());
  struct Ctx {
    std::string* text;
    void (*emit)(void*, const char*, size_t);
    void* ctx;
  } ctx{&out->text, emit, emit_ctx};
  GenerateIo io;
  io.ctx = &ctx;
  io.emit = [](void* c, const char* b, size_t n) {
    Ctx* x = static_cast<Ctx*>(c);
    x->text->append(b, n);
    if (x->emit) x->emit(x->ctx, b, n);
  };
  io.now_us = [](void*) { return HostClock().now_us(); };
  out->tokens.assign(opts.prompt.size() + 3 + opts.steps, 0);
  size_t n = 0;
  s = generate(&head, hm.tokenizer(), &sampler, opts.prompt.data(), opts.prompt.size(), opts.steps,
               out->tokens.data(), out->tokens.size(), io, &out->gen, &n);
  out->tokens.resize(n);
  out->counters = head.counters();
  out->link = head.link_counters();
  if (s != Status::kOk) {
    *err = head.error()[0] ? std::string(head.error()) : std::string(status_message(s));
    *hint = status_hint(s);
    return false;
  }
  std::vector<StageStats> st(kMaxStages);
  size_t ns = 0;
  head.collect_stats(st.data(), st.size(), &ns);
  st.resize(ns);
  out->stages = st;
  out->counters = head.counters();
  out->link = head.link_counters();
  return true;
}

}  // namespace llmwire
