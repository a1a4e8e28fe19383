// llmwire stage: run one stage of a ring on this PC — a worker, or (with the stage 0 image)
// the head that tells the story. On a serial port (--port) a PC can be any board of a real
// ring; the simulator runs each stage this way over pipes (--fd-in/--fd-out).
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <memory>

#include "cli/commands.h"
#include "cli/validators.h"
#include "pipeline/split_link.h"
#include "platform/host/fd_link.h"
#include "platform/host/host_stage.h"
#include "platform/host/serial_port.h"
#include "runtime/head_console.h"

namespace llmwire::cli {
namespace {

struct Args {
  std::string image, port, stats_out, prompt;
  bool prompt_set = false;
  uint32_t baud = 460800;
  int fd_in = -1, fd_out = -1;
  uint32_t boot_id = 0;
  uint32_t steps = 256, window = 4, timeout_ms = 2000, speculate = 0, batch = 1;
  float temperature = 1.0f, topp = 0.9f;
  uint64_t seed = 1;
  bool quiet = false;
  uint32_t protocol_version = kMessageVersion;
};

void emit(void*, const char* s, size_t n) {
  std::fwrite(s, 1, n, stdout);
  std::fflush(stdout);
}

void discard(void*, const char*, size_t) {}

void write_stats(const std::string& path, const StoryResult& r, const HeadCounters& c,
                 const FrameCounters& link, const HopCounters& hop, const StageStats* stages,
                 size_t n) {
  std::ofstream out(path);
  out << "head completed=" << (r.gen.prompt_tokens + r.gen.generated_tokens)
      << " prompt=" << r.gen.prompt_tokens << " generated=" << r.gen.generated_tokens
      << " prompt_us=" << r.gen.prompt_us << " chunks=" << c.chunks_sent
      << " positions_sent=" << c.positions_sent << " retransmissions=" << c.retransmissions
      << " timeouts=" << c.timeouts << " need_replay=" << c.need_replay_received
      << " replays=" << c.replays << " replayed=" << c.replayed_positions
      << " duplicates=" << c.duplicates << " compute_us=" << c.compute_us
      << " wait_us=" << c.wait_us << " frames_rx=" << c.frames_rx << " frames_tx=" << c.frames_tx
      << " crc=" << link.crc_errors << " resyncs=" << link.resyncs
      << " partial=" << link.partial_timeouts << " resent=" << hop.frames_resent
      << " naks=" << hop.naks_sent << " mended=" << hop.mended << " hop_lost=" << hop.lost
      << " hop_dups=" << hop.duplicates << " hello_attempts=" << c.hello_attempts
      << " classify_rounds=" << c.classify_rounds << " logits_rows=" << c.logits_rows_rx
      << " sample_rounds=" << c.sample_rounds << " sample_fetches=" << c.sample_fetches
      << " sample_restarts=" << c.sample_restarts << "\n";
  for (size_t i = 0; i < n; i++) {
    const StageStats& s = stages[i];
    out << "stage index=" << s.stage_index << " boot=" << s.boot_id << " frames_rx=" << s.frames_rx
        << " frames_tx=" << s.frames_tx << " crc=" << s.crc_errors << " resyncs=" << s.resyncs
        << " oversize=" << s.oversize << " partial=" << s.partial_timeouts
        << " positions=" << s.positions_computed << " need_replay=" << s.need_replay_sent
        << " compute_us=" << s.compute_us << " link_wait_us=" << s.link_wait_us
        << " resent=" << s.frames_resent << "\n";
  }
}

void run(Args& a) {
  std::unique_ptr<FdLink> in, out;
  std::unique_ptr<SplitLink> split;
  std::unique_ptr<SerialPort> serial;
  std::string err, hint;
  ByteLink* link = nullptr;
  if (!a.port.empty()) {
    serial = std::make_unique<SerialPort>();
    if (!serial->open(a.port, a.baud, &err)) fail(err);
    link = serial.get();
  } else if (a.fd_in >= 0 && a.fd_out >= 0) {
    in = std::make_unique<FdLink>(a.fd_in, true);
    out = std::make_unique<FdLink>(a.fd_out, true);
    split = std::make_unique<SplitLink>(in.get(), out.get());
    link = split.get();
  }
  if (!a.boot_id) a.boot_id = (uint32_t)getpid() ^ (uint32_t)time(nullptr);
  StageOptions so;
  so.head.window = a.window;
  so.head.timeout_ms = a.timeout_ms;
  so.protocol_version = (uint16_t)a.protocol_version;
  // The verification pass runs the current token and up to `speculate` guesses together.
  so.speculate = a.speculate;
  // Prompt chunks (a ring) and the one-board prompt run up to --batch positions per pass.
  so.run.prompt_batch = a.speculate + 1 > a.batch ? a.speculate + 1 : a.batch;
  FdConsole console;
  HostStage hs;
  if (!hs.boot(a.image, link, so, 1, a.boot_id, &console, &err, &hint)) fail(err, hint);
  Stage& st = hs.stage();
  if (!st.is_head()) {
    if (!link) {
      fail("say where the ring is: --port /dev/ttyUSB0 (a serial adapter) or --fd-in/--fd-out");
    }
    st.serve(nullptr, nullptr);
    // A worker serves until its link ends: that is a failure to report, not a clean exit.
    const std::string why = serial ? serial->error() : !in->ok() ? in->error() : out->error();
    fail("worker stage " + std::to_string(st.image().info().stage_index) + ": the ring link " +
             (a.port.empty() ? std::string("closed") : "on " + a.port + " failed") +
             (why.empty() ? std::string() : " (" + why + ")"),
         a.port.empty() ? "" : "check the cable and that no other program uses the port", 4);
  }
  if (!link && st.image().info().stage_count > 1) {
    fail("say where the ring is: --port /dev/ttyUSB0 (a serial adapter) or --fd-in/--fd-out");
  }
  HeadConsole hc;
  hc.init(&st, a.quiet ? discard : emit, nullptr);
  hc.settings().temperature = a.temperature;
  hc.settings().topp = a.topp;
  hc.settings().seed = a.seed;
  hc.settings().max_new = a.steps;
  hc.settings().speculate = a.speculate;
  char msg[512];
  if (!a.prompt_set) {
    // Interactive: the board's console on this terminal.
    char banner[256];
    st.describe(banner, sizeof banner);
    std::printf("llmwire %s\n", banner);
    if (hc.connect(msg, sizeof msg) != Status::kOk) std::printf("ring: %s\n", msg);
    std::printf("type a story opening, or /help\n");
    std::fflush(stdout);
    hc.run(nullptr, nullptr);
    return;
  }
  StoryResult r;
  const Status s = hc.tell(a.prompt.data(), a.prompt.size(), &r, msg, sizeof msg);
  if (!a.quiet) std::printf("\n");
  StageStats stages[kMaxStages];
  size_t n = 0;
  if (s == Status::kOk) st.head().collect_stats(stages, kMaxStages, &n);
  if (!a.stats_out.empty()) {
    write_stats(a.stats_out, r, st.head().counters(), st.head().link_counters(),
                st.head().hop_counters(), stages, n);
  }
  if (s != Status::kOk) fail(msg, "", 4);
  if (a.stats_out.empty()) {
    std::fprintf(stderr,
                 "---\n%u prompt + %u generated tokens; retransmissions %u, replays %u, CRC "
                 "rejects at the head %u\n",
                 r.gen.prompt_tokens, r.gen.generated_tokens, st.head().counters().retransmissions,
                 st.head().counters().replays, st.head().link_counters().crc_errors);
  }
}

}  // namespace

void add_stage_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("stage",
                                 "Run one stage of a ring on this PC (worker, or head with the "
                                 "stage 0 image) over a serial port");
  static Args a;
  cmd->add_option("--image", a.image, "this stage's image (from 'llmwire split')")->required();
  cmd->add_option("--port", a.port,
                  "serial device wired into the ring (TX to the next board, RX from the previous)");
  cmd->add_option("--baud", a.baud, "serial baud rate (the same on every board)")
      ->default_val(460800);
  cmd->add_option("--fd-in", a.fd_in,
                  "read the ring from this file descriptor (the simulator uses pipes)");
  cmd->add_option("--fd-out", a.fd_out, "write the ring to this file descriptor");
  cmd->add_option("--boot-id", a.boot_id, "identifies this boot to the head (default: random)");
  cmd->add_option_function<std::string>(
      "-p,--prompt",
      [](const std::string& p) {
        a.prompt = p;
        a.prompt_set = true;
      },
      "head: tell one story continuing this opening (without it: an interactive console on "
      "this terminal, the same commands as the board's, /help lists them)");
  cmd->add_option("-n,--steps", a.steps, "head: maximum tokens to generate")
      ->default_val(256)
      ->check(CLI::Range(1u, kMaxSteps));
  cmd->add_option("--temp", a.temperature, "head: temperature (0 = greedy)")
      ->default_val(1.0f)
      ->check(finite_range(0, 100));
  cmd->add_option("--topp", a.topp, "head: top-p (nucleus) cutoff; 1 = off")
      ->default_val(0.9f)
      ->check(finite_range(0, 1));
  cmd->add_option("--seed", a.seed, "head: random seed, 1 or more")
      ->default_val(1)
      ->check(seed_range());
  cmd->add_option("--window", a.window,
                  "head: prompt chunks in flight (1 = no pipelining; a chunk is --batch positions)")
      ->default_val(4)
      ->check(CLI::Range(1u, 64u));
  cmd->add_option("--batch", a.batch,
                  "prompt positions per pass over the weights: the head sends the prompt in "
                  "chunks of up to B positions (as many as a frame holds), every stage runs a "
                  "chunk in one pass; give every board of a ring the same B (1 = position by "
                  "position)")
      ->default_val(1)
      ->check(CLI::Range(1u, kMaxPromptBatch));
  cmd->add_option("--timeout-ms", a.timeout_ms,
                  "head: resend a position not back in this time, 1 to 600000 ms")
      ->default_val(2000)
      ->check(CLI::Range(1u, 600000u));
  cmd->add_option("--speculate", a.speculate,
                  "head: prompt-lookup speculative decoding, up to N guessed tokens verified per "
                  "pass (0 = off; /spec changes it up to N; saves passes on a one-board model)")
      ->default_val(0)
      ->check(CLI::Range(0u, kMaxSpeculate));
  cmd->add_option("--stats-out", a.stats_out, "head: write every stage's counters to this file");
  cmd->add_flag("--quiet", a.quiet, "head: do not stream the story");
  cmd->add_option("--protocol-version", a.protocol_version,
                  "worker: protocol version to announce (testing old firmware)")
      ->group("");
  cmd->callback([] { run(a); });
}

}  // namespace llmwire::cli
