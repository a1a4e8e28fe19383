#include "runtime/head_console.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "engine/crc32c.h"

namespace llmwire {
namespace {

void console_emit(void* ctx, const char* s, size_t n) {
  Console* c = static_cast<Console*>(ctx);
  if (c) c->write(s, n);
}

// "12.3" without float formatting (nano printf): value = num / den, one decimal.
void tenths(char* buf, size_t cap, uint64_t num, uint64_t den) {
  const uint64_t t = den ? (num * 10 + den / 2) / den : 0;
  snprintf(buf, cap, "%lu.%lu", (unsigned long)(t / 10), (unsigned long)(t % 10));
}

// "1.23": num / den with two decimals.
void hundredths(char* buf, size_t cap, uint64_t num, uint64_t den) {
  const uint64_t t = den ? (num * 100 + den / 2) / den : 0;
  snprintf(buf, cap, "%lu.%02lu", (unsigned long)(t / 100), (unsigned long)(t % 100));
}

}  // namespace

void HeadConsole::init(Stage* stage, void (*emit)(void*, const char*, size_t), void* emit_ctx) {
  stage_ = stage;
  emit_ = emit ? emit : console_emit;
  emit_ctx_ = emit ? emit_ctx : stage->platform().console;
  settings_ = StorySettings{};
  connected_ = false;
}

void HeadConsole::print(const char* s) {
  emit_(emit_ctx_, s, strlen(s));
}

void HeadConsole::printf_line(const char* fmt, ...) {
  char buf[320];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  print(buf);
  print("\n");
}

Status HeadConsole::connect(char* msg, size_t cap) {
  msg[0] = 0;
  const Status s = stage_->head().discover(msg, cap);
  connected_ = s == Status::kOk;
  return s;
}

Status HeadConsole::tell(const char* prompt, size_t len, StoryResult* out, char* msg, size_t cap) {
  msg[0] = 0;
  *out = StoryResult{};
  Stage& st = *stage_;
  const size_t max_prompt = st.tokens_capacity() - 3 - st.model().seq_len();
  if (len > max_prompt) {
    snprintf(msg, cap, "the opening is %lu bytes; the longest this board takes is %lu",
             (unsigned long)len, (unsigned long)max_prompt);
    return Status::kPromptTooLong;
  }
  if (!connected_) {
    const Status s = connect(msg, cap);
    if (s != Status::kOk) return s;
  }
  Sampler& sm = st.sampler();
  sm.set_temperature(settings_.temperature);
  sm.set_topp(settings_.topp);
  sm.reseed(settings_.seed);
  GenerateIo io;
  io.ctx = this;
  io.emit = [](void* c, const char* b, size_t n) {
    HeadConsole* h = static_cast<HeadConsole*>(c);
    h->emit_(h->emit_ctx_, b, n);
  };
  io.now_us = [](void* c) {
    return static_cast<HeadConsole*>(c)->stage_->platform().clock->now_us();
  };
  const uint32_t room = st.model().seq_len();
  const uint32_t max_new = settings_.max_new < room ? settings_.max_new : room;
  GenerateSpeculation spec;
  spec.max_draft =
      settings_.speculate < st.speculate_max() ? settings_.speculate : st.speculate_max();
  spec.logits = st.spec_logits();
  spec.logits_len = (size_t)(st.speculate_max() + 1) * st.model().config().vocab_size;
  const Status s = generate(&st.head(), st.tokenizer(), &sm, prompt, len, max_new, st.tokens(),
                            st.tokens_capacity(), io, &out->gen, &out->n_tokens, &spec);
  last_ = out->gen;
  out->digest = crc32c(reinterpret_cast<const uint8_t*>(st.tokens()), out->n_tokens * 4);
  if (s != Status::kOk) {
    const char* e = st.head().error();
    snprintf(msg, cap, "%s. %s", e[0] ? e : status_message(s), status_hint(s));
    if (s == Status::kLinkError || s == Status::kRingMismatch) connected_ = false;
  }
  return s;
}

void HeadConsole::handle_line(const char* line, size_t len) {
  char msg[320];
  const Command c = parse_command(line, len, stage_->model().seq_len(), msg, sizeof msg);
  switch (c.kind) {
    case CommandKind::kNone:
      return;
    case CommandKind::kInvalid:
      printf_line("%s", msg);
      return;
    case CommandKind::kHelp:
      print(kConsoleHelp);
      return;
    case CommandKind::kStats:
      print_stats();
      return;
    case CommandKind::kSelftest:
      run_selftest();
      return;
    case CommandKind::kReset:
      settings_ = StorySettings{};
      stage_->head().begin();
      printf_line("reset: settings restored, story forgotten");
      return;
    case CommandKind::kSpec:
      if (c.u > stage_->speculate_max()) {
        printf_line("/spec: this board verifies at most %u guessed tokens per pass (0: off)",
                    (unsigned)stage_->speculate_max());
        return;
      }
      apply_setting(c, &settings_);
      printf_line("ok: spec %u%s", (unsigned)settings_.speculate,
                  settings_.speculate && stage_->head().max_batch() < 2
                      ? " (this ring checks guesses one position at a time: no passes saved)"
                      : "");
      return;
    case CommandKind::kTemp:
    case CommandKind::kTopp:
    case CommandKind::kLen:
    case CommandKind::kSeed: {
      apply_setting(c, &settings_);
      char t[32], p[32];
      tenths(t, sizeof t, (uint64_t)(settings_.temperature * 1000.0f + 0.5f), 1000);
      tenths(p, sizeof p, (uint64_t)(settings_.topp * 1000.0f + 0.5f), 1000);
      printf_line("ok: temp %s, topp %s, len %u, seed %lu%s", t, p, (unsigned)settings_.max_new,
                  (unsigned long)(settings_.seed & 0xFFFFFFFFu),
                  settings_.seed > 0xFFFFFFFFu ? " (low 32 bits shown)" : "");
      return;
    }
    case CommandKind::kStory: {
      StoryResult r;
      const Status s = tell(c.text, c.len, &r, msg, sizeof msg);
      print("\n");
      if (s != Status::kOk) {
        printf_line("error: %s", msg);
        return;
      }
      char rate[32];
      const uint32_t gen = r.gen.generated_tokens;
      tenths(rate, sizeof rate, gen > 1 ? (uint64_t)(gen - 1) * 1000000u : 0, r.gen.generation_us);
      printf_line("[%u tokens, %s tok/s, %u boards]", (unsigned)gen, rate,
                  (unsigned)stage_->image().info().stage_count);
      return;
    }
  }
}

void HeadConsole::print_stats() {
  Stage& st = *stage_;
  const Platform& p = st.platform();
  const MemoryNeeds used = st.memory_used();
  char t[32], pp[32];
  tenths(t, sizeof t, (uint64_t)(settings_.temperature * 1000.0f + 0.5f), 1000);
  tenths(pp, sizeof pp, (uint64_t)(settings_.topp * 1000.0f + 0.5f), 1000);
  printf_line("memory: fast %lu of %lu B used, big %lu of %lu B used", (unsigned long)used.fast,
              (unsigned long)p.fast.size, (unsigned long)used.big, (unsigned long)p.big.size);
  printf_line("settings: temp %s, topp %s, len %u, seed %lu", t, pp, (unsigned)settings_.max_new,
              (unsigned long)(settings_.seed & 0xFFFFFFFFu));
  // Weight passes per generated token: 1.00 without speculation.
  const uint32_t gen = last_.generated_tokens;
  char per[32], kept[32];
  hundredths(per, sizeof per, last_.passes, gen);
  tenths(kept, sizeof kept, (uint64_t)last_.accepted * 100u, last_.drafted);
  printf_line(
      "speculation: spec %u (at most %u); last story %u weight passes for %u tokens (%s per "
      "token), %u guessed, %u kept (%s%%)",
      (unsigned)settings_.speculate, (unsigned)st.speculate_max(), (unsigned)last_.passes,
      (unsigned)gen, per, (unsigned)last_.drafted, (unsigned)last_.accepted, kept);
  const HeadCounters& c = st.head().counters();
  const FrameCounters lc = st.head().link_counters();
  printf_line("head: compute %lu ms, ring wait %lu ms, last story %u+%u tokens, prompt chunks %u",
              (unsigned long)(c.compute_us / 1000), (unsigned long)(c.wait_us / 1000),
              (unsigned)last_.prompt_tokens, (unsigned)last_.generated_tokens,
              (unsigned)c.chunks_sent);
  printf_line(
      "link: frames rx %u tx %u, CRC rejects %u, resyncs %u, retransmissions %u, "
      "replays %u",
      (unsigned)c.frames_rx, (unsigned)c.frames_tx, (unsigned)lc.crc_errors, (unsigned)lc.resyncs,
      (unsigned)c.retransmissions, (unsigned)c.replays);
  if (st.image().info().stage_count < 2) return;
  StageStats stats[8];
  size_t n = 0;
  if (st.head().collect_stats(stats, 8, &n) != Status::kOk) {
    printf_line("stages: no answer from the ring");
    return;
  }
  for (size_t i = 0; i < n; i++) {
    printf_line("stage %u: compute %lu ms, link wait %lu ms, positions %u, CRC rejects %u",
                (unsigned)stats[i].stage_index, (unsigned long)(stats[i].compute_us / 1000),
                (unsigned long)(stats[i].link_wait_us / 1000),
                (unsigned)stats[i].positions_computed, (unsigned)stats[i].crc_errors);
  }
}

Status HeadConsole::selftest(StoryResult* r, char* msg, size_t cap) {
  const StorySettings saved = settings_;
  settings_.temperature = 0.0f;
  settings_.topp = 0.9f;
  settings_.seed = 1;
  settings_.max_new = kSelftestTokens;
  const Status s = tell(kSelftestPrompt, sizeof kSelftestPrompt - 1, r, msg, cap);
  settings_ = saved;
  return s;
}

void HeadConsole::run_selftest() {
  StoryResult r;
  char msg[320];
  const Status s = selftest(&r, msg, sizeof msg);
  print("\n");
  if (s != Status::kOk) {
    printf_line("selftest: error: %s", msg);
    return;
  }
  const uint32_t want = stage_->image().info().selftest_digest;
  if (want == 0) {
    printf_line(
        "selftest: digest %08lx (%u tokens); the image stores no expected digest "
        "(re-split it with this llmwire to compare)",
        (unsigned long)r.digest, (unsigned)r.n_tokens);
  } else if (want == r.digest) {
    printf_line("selftest: ok, digest %08lx (%u tokens) equals the PC's", (unsigned long)r.digest,
                (unsigned)r.n_tokens);
  } else {
    printf_line(
        "selftest: MISMATCH: digest %08lx (%u tokens), the PC's is %08lx: this ring "
        "computes differently from the PC (report it with every board's boot banner)",
        (unsigned long)r.digest, (unsigned)r.n_tokens, (unsigned long)want);
  }
}

void HeadConsole::run(bool (*stop)(void*), void* ctx) {
  Console* con = stage_->platform().console;
  if (!con) return;
  char buf[64];
  while (con->ok() && !(stop && stop(ctx))) {
    const size_t n = con->read(buf, sizeof buf, 50);
    for (size_t i = 0; i < n; i++) {
      const char ch = buf[i];
      if (ch == '\n' || ch == '\r') {
        if (line_overflow_) {
          printf_line("that line was longer than %u bytes and was dropped",
                      (unsigned)(sizeof line_ - 1));
        } else {
          handle_line(line_, line_len_);
        }
        line_len_ = 0;
        line_overflow_ = false;
        continue;
      }
      if (line_len_ + 1 < sizeof line_) {
        line_[line_len_++] = ch;
      } else {
        line_overflow_ = true;
      }
    }
  }
}

}  // namespace llmwire
