#include "tools/sim.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <thread>

#include "engine/image.h"
#include "link/frame.h"
#include "link/messages.h"
#include "platform/host/mapped_file.h"
#include "tools/planner.h"

namespace llmwire {
namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void sleep_until(double t) {
  const double d = t - now_s();
  if (d <= 0) return;
  struct timespec ts;
  ts.tv_sec = (time_t)d;
  ts.tv_nsec = (long)((d - (double)ts.tv_sec) * 1e9);
  nanosleep(&ts, nullptr);
}

struct StageProc {
  pid_t pid = -1;
  int fd_in = -1, fd_out = -1;  // the child's ends
  uint32_t boot_id = 0;
  std::vector<std::string> args;
};

struct Sim;

// One wire: stage k's TX -> faults and baud-rate pacing -> stage k+1's RX.
struct Relay : FrameSink {
  Sim* sim = nullptr;
  uint32_t hop = 0;  // from stage `hop` to stage (hop + 1) % n
  int from_fd = -1, to_fd = -1;
  std::unique_ptr<WireFaults> faults;
  FrameReceiver rx{this};
  double wire_free_at = 0;
  uint64_t bytes = 0, frames = 0;
  double wire_s = 0;
  void on_frame(const Frame& f) override;
  void run();
  void send_paced(const uint8_t* p, size_t n);
};

// A reboot still to happen: stage, the position that triggers it.
struct PendingReboot {
  uint32_t stage = 0, pos = 0;
  bool done = false;  // touched only by the relay thread feeding `stage`
};

struct Sim {
  SimOptions opts;
  std::vector<StageProc> procs;
  std::vector<std::unique_ptr<Relay>> relays;
  std::mutex mu;
  std::atomic<bool> stop{false};
  std::vector<PendingReboot> pending;
  std::vector<uint32_t> reboots_of;  // per stage
  uint32_t reboots = 0;
  std::string stats_path;

  bool spawn(size_t k, std::string* err);
  void reboot(size_t k);
};

bool Sim::spawn(size_t k, std::string* err) {
  StageProc& p = procs[k];
  std::vector<std::string> args = p.args;
  args.push_back("--boot-id");
  args.push_back(std::to_string(p.boot_id));
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const pid_t pid = fork();
  if (pid < 0) {
    *err = std::string("fork failed: ") + strerror(errno);
    return false;
  }
  if (pid == 0) {
    // Child: keep only stdio and this stage's two pipe ends.
    fcntl(p.fd_in, F_SETFD, 0);
    fcntl(p.fd_out, F_SETFD, 0);
    execv(opts.exe.c_str(), argv.data());
    _exit(127);
  }
  p.pid = pid;
  return true;
}

void Sim::reboot(size_t k) {
  std::lock_guard<std::mutex> lock(mu);
  StageProc& p = procs[k];
  if (p.pid > 0) {
    kill(p.pid, SIGKILL);
    waitpid(p.pid, nullptr, 0);
  }
  p.boot_id += 1000;  // a new boot
  std::string err;
  spawn(k, &err);
  reboots++;
  reboots_of[k]++;
}

void Relay::send_paced(const uint8_t* p, size_t n) {
  // Bytes leave at baud/10 bytes per second (8N1); deliver in small pieces so a receiver sees
  // them arrive over time, as from a UART.
  const double byte_s = 10.0 / sim->opts.baud;
  size_t off = 0;
  while (off < n) {
    const size_t piece = n - off < 64 ? n - off : 64;
    const double start = wire_free_at > now_s() ? wire_free_at : now_s();
    wire_free_at = start + piece * byte_s;
    wire_s += piece * byte_s;
    sleep_until(wire_free_at);
    size_t done = 0;
    while (done < piece) {
      const ssize_t w = write(to_fd, p + off + done, piece - done);
      if (w < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN) {
          struct pollfd pf {
            to_fd, POLLOUT, 0
          };
          poll(&pf, 1, 50);
          if (sim->stop) return;
          continue;
        }
        return;
      }
      done += (size_t)w;
    }
    off += piece;
    bytes += piece;
  }
}

void Relay::on_frame(const Frame& f) {
  frames++;
  const uint32_t dest = (hop + 1) % (uint32_t)sim->procs.size();
  ActivationView a;
  if (f.type == (uint8_t)MsgType::kActivation &&
      decode_activation(f.payload, f.len, &a) == MsgStatus::kOk) {
    for (PendingReboot& r : sim->pending) {
      if (r.stage == dest && !r.done && a.h.pos >= r.pos) {
        r.done = true;
        sim->reboot(dest);  // the board loses power just before this frame arrives
        break;
      }
    }
  }
  std::vector<WireChunk> chunks;
  faults->transmit(f.raw, f.raw_len, &chunks);
  for (const WireChunk& c : chunks) {
    send_paced(c.bytes.data(), c.bytes.size());
    if (c.pause_ms_after) {
      wire_free_at = (wire_free_at > now_s() ? wire_free_at : now_s()) + c.pause_ms_after / 1000.0;
    }
  }
}

void Relay::run() {
  uint8_t buf[4096];
  const double t0 = now_s();
  while (!sim->stop) {
    struct pollfd pf {
      from_fd, POLLIN, 0
    };
    const int r = poll(&pf, 1, 10);
    const uint32_t now_ms = (uint32_t)((now_s() - t0) * 1000);
    if (r > 0 && (pf.revents & POLLIN)) {
      const ssize_t n = read(from_fd, buf, sizeof buf);
      if (n > 0) rx.push(buf, (size_t)n, now_ms);
    } else {
      rx.poll_timeout(now_ms);
    }
  }
}

std::map<std::string, std::string> parse_kv(const std::string& line) {
  std::map<std::string, std::string> m;
  std::istringstream in(line);
  std::string tok;
  in >> tok;
  m["_kind"] = tok;
  while (in >> tok) {
    const size_t eq = tok.find('=');
    if (eq != std::string::npos) m[tok.substr(0, eq)] = tok.substr(eq + 1);
  }
  return m;
}

uint64_t num(const std::map<std::string, std::string>& m, const char* k) {
  auto it = m.find(k);
  return it == m.end() ? 0 : std::stoull(it->second);
}

}  // namespace

int run_sim(const SimOptions& o, std::string* err) {
  const size_t n = o.images.size();
  if (n == 0) {
    *err = "no stage images given";
    return 2;
  }
  // Read the head image: model size for the timeout, the prompt's length for --reboot.
  MappedFile head_file;
  if (!head_file.open(o.images[0], err)) return 2;
  Image head_img;
  Status s = head_img.open(head_file.data(), head_file.size(), true);
  if (s != Status::kOk) {
    *err = o.images[0] + ": " + status_message(s);
    return 2;
  }
  if (head_img.info().stage_index != 0) {
    *err = o.images[0] + " is the image of stage " + std::to_string(head_img.info().stage_index) +
           " of " + std::to_string(head_img.info().stage_count) +
           ", not the head's: list the stage 0 image first (ring order: stage 0, 1, 2, ...)";
    return 2;
  }
  for (size_t k = 1; k < n; k++) {
    MappedFile f;
    Image im;
    if (!f.open(o.images[k], err)) return 2;
    const Status st = im.open(f.data(), f.size(), false);
    if (st != Status::kOk) {
      *err = o.images[k] + ": " + status_message(st);
      return 2;
    }
    if (im.info().stage_index == 0) {
      *err = o.images[k] + " is a head image (stage 0) but is listed as board " +
             std::to_string(k) + ": a ring has one head; give each board its own stage image";
      return 2;
    }
  }
  auto sim = std::make_unique<Sim>();
  sim->opts = o;
  const uint32_t dim = head_img.info().config.dim;
  const double ring_s = (double)n * activation_frame_bytes(dim) * 10.0 / o.baud;
  uint32_t timeout_ms = o.timeout_ms;
  if (!timeout_ms) {
    timeout_ms = (uint32_t)(4000 * ring_s) + 300 + 2 * o.faults.stall_ms;
  }
  sim->reboots_of.assign(n, 0);
  for (const SimReboot& r : o.reboots) {
    if (r.stage <= 0 || (size_t)r.stage >= n) {
      *err = "--reboot " + std::to_string(r.stage) + "@" + std::to_string(r.token) +
             ": the stage must be a worker (1.." + std::to_string(n - 1) + ")";
      return 2;
    }
    if (r.token >= o.steps) {
      *err = "--reboot " + std::to_string(r.stage) + "@" + std::to_string(r.token) +
             ": the story has only " + std::to_string(o.steps) + " tokens (-n)";
      return 2;
    }
    // Position of generated token t = prompt tokens - 1 + t (BOS and dummy prefix included).
    Tokenizer tok;
    tok.init(head_img.tokenizer());
    std::vector<int32_t> ids(o.prompt.size() + 3);
    size_t nt = 0;
    tok.encode(o.prompt.data(), o.prompt.size(), true, false, ids.data(), ids.size(), &nt);
    PendingReboot p;
    p.stage = (uint32_t)r.stage;
    p.pos = (uint32_t)(nt - 1 + r.token);
    sim->pending.push_back(p);
  }
  char tmpl[] = "/tmp/llmwire-sim-XXXXXX";
  const int sfd = mkstemp(tmpl);
  if (sfd >= 0) close(sfd);
  sim->stats_path = tmpl;

  // Pipes: stage k writes tx[k][1]; relay k reads tx[k][0] and writes rx[k+1][1];
  // stage k+1 reads rx[k+1][0].
  std::vector<std::array<int, 2>> tx(n), rx(n);
  for (size_t k = 0; k < n; k++) {
    if (pipe2(tx[k].data(), O_CLOEXEC) != 0 || pipe2(rx[k].data(), O_CLOEXEC) != 0) {
      *err = std::string("pipe failed: ") + strerror(errno);
      return 2;
    }
    fcntl(rx[k][1], F_SETFL, O_NONBLOCK);
  }
  sim->procs.resize(n);
  for (size_t k = 0; k < n; k++) {
    StageProc& p = sim->procs[k];
    p.fd_in = rx[k][0];
    p.fd_out = tx[k][1];
    p.boot_id = (uint32_t)(getpid() & 0xFFFF) * 64 + (uint32_t)k + 1;
    p.args = {o.exe,      "stage",
              "--image",  o.images[k],
              "--fd-in",  std::to_string(p.fd_in),
              "--fd-out", std::to_string(p.fd_out)};
    if (k == 0) {
      char buf[64];
      std::vector<std::string> h = {"-p",           o.prompt,
                                    "-n",           std::to_string(o.steps),
                                    "--seed",       std::to_string(o.seed),
                                    "--window",     std::to_string(o.window),
                                    "--timeout-ms", std::to_string(timeout_ms),
                                    "--stats-out",  sim->stats_path};
      snprintf(buf, sizeof buf, "%.9g", (double)o.temperature);
      h.push_back("--temp");
      h.push_back(buf);
      snprintf(buf, sizeof buf, "%.9g", (double)o.topp);
      h.push_back("--topp");
      h.push_back(buf);
      if (o.quiet) h.push_back("--quiet");
      p.args.insert(p.args.end(), h.begin(), h.end());
    }
  }
  for (size_t k = 0; k < n; k++) {
    auto r = std::make_unique<Relay>();
    r->sim = sim.get();
    r->hop = (uint32_t)k;
    r->from_fd = tx[k][0];
    r->to_fd = rx[(k + 1) % n][1];
    WireFaultConfig fc = o.faults;
    fc.seed = o.faults.seed * 1000003ull + k + 1;
    r->faults = std::make_unique<WireFaults>(fc);
    sim->relays.push_back(std::move(r));
  }
  // Workers first, then the head.
  for (size_t k = 1; k <= n; k++) {
    const size_t idx = k % n;
    if (!sim->spawn(idx, err)) return 2;
  }
  std::vector<std::thread> threads;
  for (auto& r : sim->relays) threads.emplace_back([&r] { r->run(); });

  const double t_start = now_s();
  int status = 0;
  for (;;) {
    pid_t head_pid;
    {
      std::lock_guard<std::mutex> lock(sim->mu);
      head_pid = sim->procs[0].pid;
    }
    const pid_t w = waitpid(head_pid, &status, 0);
    if (w == head_pid || (w < 0 && errno != EINTR)) break;
  }
  const double elapsed = now_s() - t_start;
  sim->stop = true;
  for (auto& t : threads) t.join();
  {
    std::lock_guard<std::mutex> lock(sim->mu);
    for (size_t k = 1; k < n; k++) {
      if (sim->procs[k].pid > 0) {
        kill(sim->procs[k].pid, SIGKILL);
        waitpid(sim->procs[k].pid, nullptr, 0);
      }
    }
  }
  for (size_t k = 0; k < n; k++) {
    close(tx[k][0]);
    close(tx[k][1]);
    close(rx[k][0]);
    close(rx[k][1]);
  }
  const int head_rc =
      WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);

  // Per-stage table: the head's counters, the workers' (from the STATS round), the wires'.
  std::ifstream in(sim->stats_path);
  std::map<std::string, std::string> head;
  std::map<uint64_t, std::map<std::string, std::string>> stages;
  std::string line;
  while (std::getline(in, line)) {
    auto m = parse_kv(line);
    if (m["_kind"] == "head") head = m;
    if (m["_kind"] == "stage") stages[num(m, "index")] = m;
  }
  unlink(sim->stats_path.c_str());
  const uint64_t positions = num(head, "completed");
  const double per = positions ? 1.0 / positions : 0;
  std::printf(
      "\n--- simulated ring: %zu stages, %u baud, %.1f s wall clock, %llu positions (%llu prompt + "
      "%llu generated)\n",
      n, o.baud, elapsed, (unsigned long long)positions, (unsigned long long)num(head, "prompt"),
      (unsigned long long)num(head, "generated"));
  std::printf("%-7s %12s %12s %9s %9s %8s %8s %8s %8s %8s %8s %8s %8s\n", "stage", "compute",
              "link", "frames", "frames", "CRC", "resyncs", "partial", "hop", "need", "retrans",
              "replays", "reboots");
  std::printf("%-7s %12s %12s %9s %9s %8s %8s %8s %8s %8s %8s %8s %8s\n", "", "ms/token",
              "ms/token", "sent", "received", "rejects", "(bytes)", "timeouts", "resent", "replay",
              "", "", "");
  uint64_t crc_total = 0;
  for (size_t k = 0; k < n; k++) {
    const Relay& r = *sim->relays[k];
    const double link_ms = r.wire_s * 1e3 * per;
    if (k == 0) {
      const uint64_t crc = num(head, "crc");
      crc_total += crc;
      std::printf("%-7s %12.2f %12.2f %9llu %9llu %8llu %8llu %8llu %8llu %8llu %8llu %8llu %8s\n",
                  "0 head", num(head, "compute_us") / 1e3 * per, link_ms,
                  (unsigned long long)num(head, "frames_tx"),
                  (unsigned long long)num(head, "frames_rx"), (unsigned long long)crc,
                  (unsigned long long)num(head, "resyncs"),
                  (unsigned long long)num(head, "partial"), (unsigned long long)num(head, "resent"),
                  (unsigned long long)num(head, "need_replay"),
                  (unsigned long long)num(head, "retransmissions"),
                  (unsigned long long)num(head, "replays"), "-");
    } else {
      auto& m = stages[k];
      const uint64_t crc = num(m, "crc");
      crc_total += crc;
      const uint64_t pc = num(m, "positions");
      std::printf("%-7zu %12.2f %12.2f %9llu %9llu %8llu %8llu %8llu %8llu %8llu %8s %8s %8u\n", k,
                  pc ? num(m, "compute_us") / 1e3 / pc : 0.0, link_ms,
                  (unsigned long long)num(m, "frames_tx"), (unsigned long long)num(m, "frames_rx"),
                  (unsigned long long)crc, (unsigned long long)num(m, "resyncs"),
                  (unsigned long long)num(m, "partial"), (unsigned long long)num(m, "resent"),
                  (unsigned long long)num(m, "need_replay"), "-", "-", sim->reboots_of[k]);
    }
  }
  std::printf("wires (stage k TX -> stage k+1 RX):\n");
  for (size_t k = 0; k < n; k++) {
    const Relay& r = *sim->relays[k];
    const WireFaultCounters& c = r.faults->counters();
    std::printf(
        "  %zu->%zu: %llu frames, %llu bytes, %.2f ms/token on the wire; faults: %llu bits flipped "
        "in %llu "
        "frames, %llu dropped, %llu duplicated, %llu stalls\n",
        k, (k + 1) % n, (unsigned long long)c.frames, (unsigned long long)r.bytes,
        r.wire_s * 1e3 * per, (unsigned long long)c.bits_flipped, (unsigned long long)c.corrupted,
        (unsigned long long)c.dropped, (unsigned long long)c.duplicated,
        (unsigned long long)c.stalls);
  }
  uint64_t resent_total = num(head, "resent");
  for (size_t k = 1; k < n; k++) resent_total += num(stages[k], "resent");
  std::printf(
      "totals: crc_rejects=%llu hop_resent=%llu head_naks=%llu head_lost=%llu "
      "retransmissions=%llu replays=%llu reboots=%u timeouts=%llu\n",
      (unsigned long long)crc_total, (unsigned long long)resent_total,
      (unsigned long long)num(head, "naks"), (unsigned long long)num(head, "hop_lost"),
      (unsigned long long)num(head, "retransmissions"), (unsigned long long)num(head, "replays"),
      sim->reboots, (unsigned long long)num(head, "timeouts"));
  if (head_rc != 0) *err = "the head stopped with status " + std::to_string(head_rc);
  return head_rc;
}

}  // namespace llmwire
