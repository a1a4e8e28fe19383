// llmwire stage: run one stage of a ring on this PC — a worker, or (with the stage 0 image)
// the head that tells the story. On a serial port (--port) a PC can be any board of a real
// ring; the simulator runs each stage this way over pipes (--fd-in/--fd-out).
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <memory>

#include "cli/commands.h"
#include "cli/validators.h"
#include "pipeline/split_link.h"
#include "platform/host/fd_link.h"
#include "platform/host/serial_port.h"
#include "tools/stage_runner.h"

namespace llmwire::cli {
namespace {

struct Args {
  std::string image, port, stats_out, prompt;
  uint32_t baud = 460800;
  int fd_in = -1, fd_out = -1;
  uint32_t boot_id = 0;
  uint32_t steps = 256, window = 4, timeout_ms = 2000;
  float temperature = 1.0f, topp = 0.9f;
  uint64_t seed = 1;
  bool quiet = false;
  uint32_t protocol_version = kProtocolVersion;
};

void emit(void*, const char* s, size_t n) {
  std::fwrite(s, 1, n, stdout);
  std::fflush(stdout);
}

void write_stats(const std::string& path, const HeadRunResult& r) {
  std::ofstream out(path);
  const HeadCounters& c = r.counters;
  out << "head completed=" << (r.gen.prompt_tokens + r.gen.generated_tokens)
      << " prompt=" << r.gen.prompt_tokens << " generated=" << r.gen.generated_tokens
      << " positions_sent=" << c.positions_sent << " retransmissions=" << c.retransmissions
      << " timeouts=" << c.timeouts << " need_replay=" << c.need_replay_received
      << " replays=" << c.replays << " replayed=" << c.replayed_positions
      << " duplicates=" << c.duplicates << " compute_us=" << c.compute_us
      << " wait_us=" << c.wait_us << " frames_rx=" << c.frames_rx << " frames_tx=" << c.frames_tx
      << " crc=" << r.link.crc_errors << " resyncs=" << r.link.resyncs
      << " partial=" << r.link.partial_timeouts << "\n";
  for (const StageStats& s : r.stages) {
    out << "stage index=" << s.stage_index << " boot=" << s.boot_id << " frames_rx=" << s.frames_rx
        << " frames_tx=" << s.frames_tx << " crc=" << s.crc_errors << " resyncs=" << s.resyncs
        << " oversize=" << s.oversize << " partial=" << s.partial_timeouts
        << " positions=" << s.positions_computed << " need_replay=" << s.need_replay_sent
        << " compute_us=" << s.compute_us << " link_wait_us=" << s.link_wait_us << "\n";
  }
}

void run(Args& a) {
  std::unique_ptr<ByteLink> link;
  std::unique_ptr<FdLink> in, out;
  std::unique_ptr<SerialPort> serial;
  std::string err, hint;
  if (!a.port.empty()) {
    serial = std::make_unique<SerialPort>();
    if (!serial->open(a.port, a.baud, &err)) fail(err);
  } else if (a.fd_in >= 0 && a.fd_out >= 0) {
    in = std::make_unique<FdLink>(a.fd_in, true);
    out = std::make_unique<FdLink>(a.fd_out, true);
    link = std::make_unique<SplitLink>(in.get(), out.get());
  } else {
    fail("say where the ring is: --port /dev/ttyUSB0 (a serial adapter) or --fd-in/--fd-out");
  }
  ByteLink* l = serial ? static_cast<ByteLink*>(serial.get()) : link.get();
  if (!a.boot_id) a.boot_id = (uint32_t)getpid() ^ (uint32_t)time(nullptr);
  HostModel hm;
  if (!hm.load(a.image, RunOptions{}, 1, &err, &hint)) fail(err, hint);
  if (hm.model().info().stage_index != 0) {
    if (!run_worker(hm, l, a.boot_id, nullptr, &err, (uint16_t)a.protocol_version)) fail(err);
    // A worker serves until its link ends: that is a failure to report, not a clean exit.
    const std::string why = serial ? serial->error() : !in->ok() ? in->error() : out->error();
    fail("worker stage " + std::to_string(hm.model().info().stage_index) + ": the ring link " +
             (a.port.empty() ? std::string("closed") : "on " + a.port + " failed") +
             (why.empty() ? std::string() : " (" + why + ")"),
         a.port.empty() ? "" : "check the cable and that no other program uses the port", 4);
  }
  HeadRunOptions ho;
  ho.prompt = a.prompt;
  ho.steps = a.steps;
  ho.temperature = a.temperature;
  ho.topp = a.topp;
  ho.seed = a.seed;
  ho.head.boot_id = a.boot_id;
  ho.head.window = a.window;
  ho.head.timeout_ms = a.timeout_ms;
  HeadRunResult r;
  const bool ok = run_head(hm, l, ho, &r, a.quiet ? nullptr : emit, nullptr, &err, &hint);
  if (!a.quiet) std::printf("\n");
  if (!a.stats_out.empty()) write_stats(a.stats_out, r);
  if (!ok) fail(err, hint, 4);
  if (a.stats_out.empty()) {
    std::fprintf(stderr,
                 "---\n%u prompt + %u generated tokens; retransmissions %u, replays %u, CRC "
                 "rejects at the head %u\n",
                 r.gen.prompt_tokens, r.gen.generated_tokens, r.counters.retransmissions,
                 r.counters.replays, r.link.crc_errors);
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
  cmd->add_option("-p,--prompt", a.prompt, "head: story opening");
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
  cmd->add_option("--window", a.window, "head: prompt positions in flight (1 = no pipelining)")
      ->default_val(4)
      ->check(CLI::Range(1u, 64u));
  cmd->add_option("--timeout-ms", a.timeout_ms,
                  "head: resend a position not back in this time, 1 to 600000 ms")
      ->default_val(2000)
      ->check(CLI::Range(1u, 600000u));
  cmd->add_option("--stats-out", a.stats_out, "head: write every stage's counters to this file");
  cmd->add_flag("--quiet", a.quiet, "head: do not stream the story");
  cmd->add_option("--protocol-version", a.protocol_version,
                  "worker: protocol version to announce (testing old firmware)")
      ->group("");
  cmd->callback([] { run(a); });
}

}  // namespace llmwire::cli
