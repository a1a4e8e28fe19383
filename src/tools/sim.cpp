#include "tools/sim.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
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
#include "link/hop.h"
#include "link/messages.h"
#include "pipeline/chunk.h"
#include "platform/host/mapped_file.h"
#include "tools/planner.h"

namespace llmwire {
namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Sleeps until `t` in slices of at most 20 ms, returning early once *stop is set (a wire
// stalled for seconds must not hold the simulator after the head has finished).
void sleep_until(double t, const std::atomic<bool>* stop) {
  for (;;) {
    double d = t - now_s();
    if (d <= 0 || (stop && stop->load())) return;
    if (d > 0.02) d = 0.02;
    struct timespec ts;
    ts.tv_sec = (time_t)d;
    ts.tv_nsec = (long)((d - (double)ts.tv_sec) * 1e9);
    nanosleep(&ts, nullptr);
  }
}

// What a SIGTERM/SIGINT/SIGHUP handler may touch: the stats temp file and the stage processes.
// Written before the handlers are installed (and pids as stages are spawned); read only there.
char g_stats_path[256];
volatile pid_t g_stage_pids[kMaxStages];
volatile sig_atomic_t g_stage_count = 0;

extern "C" void on_fatal_signal(int sig) {
  if (g_stats_path[0]) unlink(g_stats_path);
  for (sig_atomic_t k = 0; k < g_stage_count; k++) {
    if (g_stage_pids[k] > 0) kill(g_stage_pids[k], SIGKILL);
  }
  signal(sig, SIG_DFL);
  raise(sig);
}

// "signal 7 (Bus error)" for a wait status, or "status 4".
std::string describe_exit(int status) {
  if (WIFSIGNALED(status)) {
    return "was killed by signal " + std::to_string(WTERMSIG(status)) + " (" +
           strsignal(WTERMSIG(status)) + ")";
  }
  return "stopped with status " + std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}

struct StageProc {
  pid_t pid = -1;
  int fd_in = -1, fd_out = -1;  // the child's ends
  uint32_t boot_id = 0;
  std::vector<std::string> args;
  // Emulated boards: the relays' end of the qemu's UART socket (kept at one fd number across
  // reboots), the socket path, the padded flash file, and the head's console input.
  int link_fd = -1;
  std::string sock, flash;
  int console_in = -1;
};

struct Sim;

// One wire: stage k's TX -> faults and baud-rate pacing -> stage k+1's RX.
struct Relay final : FrameSink {
  Sim* sim = nullptr;
  uint32_t hop = 0;  // from stage `hop` to stage (hop + 1) % n
  int from_fd = -1, to_fd = -1;
  std::unique_ptr<WireFaults> faults;
  FrameReceiver rx{this};
  double wire_free_at = 0;
  uint64_t bytes = 0, frames = 0;
  double wire_s = 0;
  // Time spent inside on_frame() pacing frames out. The relay's own receiver runs on a clock
  // without it: bytes that waited in the pipe meanwhile arrived on time, and must not read as
  // a stalled sender (a frame longer than a 4 KB read would be dropped half-read otherwise).
  double busy_s = 0;
  void on_frame(const Frame& f) override;
  void run();
  void send_paced(const uint8_t* p, size_t n);
  void deliver(const Frame& f);
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
  uint32_t emu_timeout_ms = 0;

  bool spawn(size_t k, std::string* err);
  bool spawn_qemu(size_t k, std::string* err);
  void reboot(size_t k);
};

// The qemu command line of emulated board k (see docs/ARCHITECTURE.md, "Emulated boards").
// LLMWIRE_EMU_MONITOR=PREFIX gives each board a QEMU monitor socket PREFIX<boot id> (debugging:
// `info registers` shows where a board is).
std::vector<std::string> qemu_args(const SimOptions& o, const StageProc& p, uint32_t timeout_ms) {
  const char* mon = getenv("LLMWIRE_EMU_MONITOR");
  const std::string monitor =
      mon ? "unix:" + std::string(mon) + std::to_string(p.boot_id) + ",server=on,wait=off" : "none";
  std::vector<std::string> a = {
      o.qemu,
      "-M",
      "virt",
      "-bios",
      "none",
      "-m",
      "16M",
      "-display",
      "none",
      "-monitor",
      monitor,
      "-chardev",
      "socket,id=link,path=" + p.sock + ",server=on,wait=on",
      "-serial",
      "chardev:link",
      "-semihosting-config",
      "enable=on,target=native,arg=llmwire,arg=boot=" + std::to_string(p.boot_id) +
          ",arg=timeout=" + std::to_string(timeout_ms) + ",arg=window=" + std::to_string(o.window) +
          ",arg=batch=" + std::to_string(o.batch),
      "-device",
      "loader,file=" + o.emulate_elf + ",cpu-num=0",
      "-drive",
      "if=pflash,format=raw,unit=0,readonly=on,file=" + p.flash};
  if (o.icount) {
    a.push_back("-icount");
    a.push_back("shift=0");
  }
  return a;
}

// Connects to a qemu's UART socket (qemu listens once it has started) and puts the
// connection at fd `at` if given, so relays keep using the same number after a reboot.
int connect_uart(const std::string& path, pid_t pid, int at, std::string* err) {
  for (int tries = 0; tries < 1000; tries++) {
    const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) break;
    struct sockaddr_un sa {};
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path.c_str());
    if (connect(fd, reinterpret_cast<struct sockaddr*>(&sa), sizeof sa) == 0) {
      fcntl(fd, F_SETFL, O_NONBLOCK);
      if (at < 0) return fd;
      dup3(fd, at, O_CLOEXEC);
      close(fd);
      return at;
    }
    close(fd);
    if (waitpid(pid, nullptr, WNOHANG) == pid) {
      *err = "qemu exited before opening its UART socket (see its message above)";
      return -1;
    }
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, nullptr);
  }
  *err = "qemu did not open its UART socket " + path + " within 10 s";
  return -1;
}

bool Sim::spawn_qemu(size_t k, std::string* err) {
  StageProc& p = procs[k];
  if ((int)k == opts.absent_stage) return true;  // never powered on
  unlink(p.sock.c_str());
  std::vector<std::string> args = qemu_args(opts, p, emu_timeout_ms);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const pid_t pid = fork();
  if (pid < 0) {
    *err = std::string("fork failed: ") + strerror(errno);
    return false;
  }
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);  // no emulated board outlives the simulator
    // The head's console is stdin (semihosting); a worker has none.
    const int in = k == 0 && p.console_in >= 0 ? p.console_in : open("/dev/null", O_RDONLY);
    if (in >= 0) dup2(in, 0);
    execvp(opts.qemu.c_str(), argv.data());
    static const char kMsg[] = "llmwire sim --emulate: cannot run qemu-system-riscv32\n";
    (void)!write(2, kMsg, sizeof kMsg - 1);  // only async-signal-safe calls after fork
    _exit(127);
  }
  p.pid = pid;
  const int fd = connect_uart(p.sock, pid, p.link_fd, err);
  if (fd < 0) return false;
  p.link_fd = fd;
  return true;
}

bool Sim::spawn(size_t k, std::string* err) {
  if (!opts.emulate_elf.empty()) return spawn_qemu(k, err);
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
  if (k < kMaxStages) g_stage_pids[k] = pid;
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
    sleep_until(wire_free_at, &sim->stop);
    if (sim->stop) return;
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
  const double entered = now_s();
  deliver(f);
  busy_s += now_s() - entered;
}

void Relay::deliver(const Frame& f) {
  frames++;
  if (getenv("LLMWIRE_SIM_TRACE")) {  // debugging: every frame on every wire
    ActivationView a;
    const bool act = f.type == (uint8_t)MsgType::kActivation &&
                     decode_activation(f.payload, f.len, &a) == MsgStatus::kOk;
    if (act) {
      fprintf(stderr, "%.3f wire %u: %s len %u pos %u epoch %u\n", now_s() * 1e3, hop,
              msg_type_name(f.type), (unsigned)f.len, a.h.pos, a.h.epoch);
    } else {
      fprintf(stderr, "%.3f wire %u: %s len %u\n", now_s() * 1e3, hop, msg_type_name(f.type),
              (unsigned)f.len);
    }
  }
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
    const uint32_t now_ms = (uint32_t)((now_s() - t0 - busy_s) * 1000);
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

// A float as the console's /temp and /topp read it (shortest text that reads back exactly).
std::string float_text(float v) {
  char buf[32];
  for (int prec = 1; prec <= 9; prec++) {
    snprintf(buf, sizeof buf, "%.*g", prec, (double)v);
    if (strtof(buf, nullptr) == v) break;
  }
  return buf;
}

// pflash wants a file of exactly 32 MiB: the image, then zeros (sparse).
bool make_flash(const std::string& image, const std::string& flash, std::string* err) {
  constexpr off_t kFlashBytes = 32 << 20;
  std::ifstream in(image, std::ios::binary);
  std::ofstream out(flash, std::ios::binary);
  out << in.rdbuf();
  out.close();
  struct stat st;
  if (!in || !out || stat(flash.c_str(), &st) != 0) {
    *err = "cannot copy " + image + " to " + flash;
    return false;
  }
  if (st.st_size > kFlashBytes) {
    *err = image + " is larger than the emulated board's 32 MiB flash";
    return false;
  }
  if (truncate(flash.c_str(), kFlashBytes) != 0) {
    *err = "cannot size " + flash + ": " + strerror(errno);
    return false;
  }
  return true;
}

// The ring on emulated boards: one qemu per stage, the relays between their UART sockets,
// the console script on the head's semihosting stdin, the story on its stdout.
int run_emulated(Sim* sim, std::string* err) {
  const SimOptions& o = sim->opts;
  const size_t n = o.images.size();
  if (o.prompt.empty() || o.prompt[0] == '/' ||
      o.prompt.find_first_of("\r\n") != std::string::npos) {
    *err =
        "--emulate types -p on the head's console: give one line of text that does not start "
        "with '/'";
    return 2;
  }
  if (access(o.emulate_elf.c_str(), R_OK) != 0) {
    *err = "no emulated-board firmware at " + o.emulate_elf +
           ": build it with scripts/build_rv32.sh (or give --firmware)";
    return 2;
  }
  if (o.absent_stage == 0) {
    *err = "the head cannot be absent";
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);  // a rebooting board's socket closes under its relay
  char dir_tmpl[] = "/tmp/llmwire-emu-XXXXXX";
  if (!mkdtemp(dir_tmpl)) {
    *err = std::string("mkdtemp failed: ") + strerror(errno);
    return 2;
  }
  const std::string dir = dir_tmpl;
  int console[2] = {-1, -1};
  if (pipe2(console, O_CLOEXEC) != 0) {
    *err = std::string("pipe failed: ") + strerror(errno);
    return 2;
  }
  sim->procs.resize(n);
  int rc = 2;
  bool ok = true;
  for (size_t k = 0; k < n && ok; k++) {
    StageProc& p = sim->procs[k];
    p.boot_id = (uint32_t)(getpid() & 0xFFFF) * 64 + (uint32_t)k + 1;
    p.sock = dir + "/uart" + std::to_string(k);
    p.flash = dir + "/flash" + std::to_string(k) + ".bin";
    if (k == 0) p.console_in = console[0];
    if ((int)k != o.absent_stage) ok = make_flash(o.images[k], p.flash, err);
  }
  for (size_t k = 1; k <= n && ok; k++) ok = sim->spawn(k % n, err);  // workers first
  const double t_start = now_s();
  std::vector<std::thread> threads;
  if (ok) {
    for (size_t k = 0; k < n; k++) {
      auto r = std::make_unique<Relay>();
      r->sim = sim;
      r->hop = (uint32_t)k;
      r->from_fd = sim->procs[k].link_fd;
      r->to_fd = sim->procs[(k + 1) % n].link_fd;
      WireFaultConfig fc = o.faults;
      fc.seed = o.faults.seed * 1000003ull + k + 1;
      r->faults = std::make_unique<WireFaults>(fc);
      sim->relays.push_back(std::move(r));
    }
    for (auto& r : sim->relays) threads.emplace_back([&r] { r->run(); });
    // What a user types: the settings, the opening, then any further lines.
    std::string script = "/temp " + float_text(o.temperature) + "\n/topp " + float_text(o.topp) +
                         "\n/seed " + std::to_string(o.seed) + "\n/len " + std::to_string(o.steps) +
                         "\n" + o.prompt + "\n";
    for (const std::string& l : o.console_after) script += l + "\n";
    if (write(console[1], script.data(), script.size()) != (ssize_t)script.size()) {
      *err = "cannot type on the head's console";
    }
    close(console[1]);
    console[1] = -1;
    int status = 0;
    for (;;) {
      const pid_t w = waitpid(sim->procs[0].pid, &status, 0);
      if (w == sim->procs[0].pid || (w < 0 && errno != EINTR)) break;
    }
    rc = WIFEXITED(status) ? WEXITSTATUS(status)
                           : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    sim->procs[0].pid = -1;
  }
  const double elapsed = now_s() - t_start;
  sim->stop = true;
  for (auto& t : threads) t.join();
  for (StageProc& p : sim->procs) {
    if (p.pid > 0) {
      kill(p.pid, SIGKILL);
      waitpid(p.pid, nullptr, 0);
    }
    if (p.link_fd >= 0) close(p.link_fd);
    unlink(p.sock.c_str());
    unlink(p.flash.c_str());
  }
  for (int fd : console) {
    if (fd >= 0) close(fd);
  }
  rmdir(dir.c_str());
  if (!ok) return 2;
  std::printf(
      "\n--- emulated ring: %zu boards (qemu rv32imafc), %u baud, %.1f s wall clock, %u reboots\n",
      n, o.baud, elapsed, sim->reboots);
  for (size_t k = 0; k < n; k++) {
    const Relay& r = *sim->relays[k];
    const WireFaultCounters& c = r.faults->counters();
    std::printf(
        "  wire %zu->%zu: %llu frames, %llu bytes; faults: %llu bits flipped in %llu frames, %llu "
        "dropped, %llu duplicated, %llu stalls\n",
        k, (k + 1) % n, (unsigned long long)c.frames, (unsigned long long)r.bytes,
        (unsigned long long)c.bits_flipped, (unsigned long long)c.corrupted,
        (unsigned long long)c.dropped, (unsigned long long)c.duplicated,
        (unsigned long long)c.stalls);
  }
  std::fflush(stdout);
  if (rc != 0) *err = "the emulated head stopped with status " + std::to_string(rc);
  return rc;
}

}  // namespace

int run_sim(const SimOptions& o, std::string* err) {
  const size_t n = o.images.size();
  if (n == 0 || n > kMaxStages) {
    *err = n == 0 ? "no stage images given"
                  : "a ring has at most " + std::to_string(kMaxStages) + " boards";
    return 2;
  }
  // Read the head image: model size for the timeout, the prompt's length for --reboot.
  // Emulated boards check their own images (a bad one is reported on the board's console).
  const bool emu = !o.emulate_elf.empty();
  MappedFile head_file;
  if (!head_file.open(o.images[0], err)) return 2;
  Image head_img;
  Status s = head_img.open(head_file.data(), head_file.size(), !emu);
  if (s != Status::kOk && !emu) {
    *err = o.images[0] + ": " + status_message(s);
    return 2;
  }
  const bool head_ok = s == Status::kOk;
  if (head_ok && head_img.info().stage_index != 0) {
    *err = o.images[0] + " is the image of stage " + std::to_string(head_img.info().stage_index) +
           " of " + std::to_string(head_img.info().stage_count) +
           ", not the head's: list the stage 0 image first (ring order: stage 0, 1, 2, ...)";
    return 2;
  }
  if (head_img.info().stage_count == 1 && n > 1) {
    *err = o.images[0] + " is a whole-model image, but " + std::to_string(n) +
           " images were listed: the ring would run it alone while the other boards idle; give "
           "the stage images from 'llmwire split' (stage 0 first), or only the whole image";
    return 2;
  }
  for (size_t k = 1; k < n; k++) {
    MappedFile f;
    Image im;
    if (!f.open(o.images[k], err)) return 2;
    const Status st = im.open(f.data(), f.size(), false);
    if (st != Status::kOk) {
      if (emu) continue;
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
  const uint32_t dim = head_ok ? head_img.info().config.dim : 0;
  // The longest activation frame: a prompt chunk of up to --batch positions.
  const double ring_s = dim ? (double)n *
                                  Hop::activation_frame_bytes(dim, chunk_positions(o.batch, dim)) *
                                  10.0 / o.baud
                            : 0.0;
  uint32_t timeout_ms = o.timeout_ms;
  const uint32_t default_timeout_ms = (uint32_t)(4000 * ring_s) + 300 + 2 * o.faults.stall_ms;
  if (!timeout_ms) timeout_ms = default_timeout_ms;
  // A position cannot come back sooner than its activation takes to cross every wire; a
  // shorter timeout would fail discovery and be blamed on the wiring.
  const uint32_t trip_ms = (uint32_t)(ring_s * 1000) + 1;
  if (timeout_ms < 2 * trip_ms) {
    *err = "--timeout-ms " + std::to_string(timeout_ms) + " is shorter than two trips around " +
           "the ring (one trip is about " + std::to_string(trip_ms) + " ms for an activation " +
           "frame over " + std::to_string(n) + " wires at " + std::to_string(o.baud) +
           " baud): use at least " + std::to_string(2 * trip_ms) + ", or leave it out (default " +
           std::to_string(default_timeout_ms) + " ms)";
    return 2;
  }
  if (emu) timeout_ms = o.timeout_ms ? o.timeout_ms : timeout_ms + 200;  // slower compute
  if (!o.reboots.empty() && !head_ok) {
    *err = o.images[0] + ": " + status_message(s);
    return 2;
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
  if (emu) {
    sim->emu_timeout_ms = timeout_ms;
    return run_emulated(sim.get(), err);
  }
  const char* tmpdir = getenv("TMPDIR");
  std::string tmpl = std::string(tmpdir && *tmpdir ? tmpdir : "/tmp") + "/llmwire-sim-XXXXXX";
  const int sfd = tmpl.size() < sizeof g_stats_path ? mkstemp(&tmpl[0]) : -1;
  if (sfd < 0) {
    *err = "cannot create a temp file in " + std::string(tmpdir && *tmpdir ? tmpdir : "/tmp") +
           ": " + strerror(errno) + " (set TMPDIR to a writable folder)";
    return 2;
  }
  close(sfd);
  sim->stats_path = tmpl;
  // Killed by the user: remove the temp file and the stage processes, then die as asked.
  memcpy(g_stats_path, tmpl.c_str(), tmpl.size() + 1);
  g_stage_count = 0;
  struct sigaction sa = {}, old_sa[3];
  sa.sa_handler = on_fatal_signal;
  sigemptyset(&sa.sa_mask);
  const int fatal[3] = {SIGTERM, SIGINT, SIGHUP};
  for (int i = 0; i < 3; i++) sigaction(fatal[i], &sa, &old_sa[i]);
  struct Restore {
    const int* sigs;
    struct sigaction* old;
    ~Restore() {
      for (int i = 0; i < 3; i++) sigaction(sigs[i], &old[i], nullptr);
      if (g_stats_path[0]) unlink(g_stats_path);
      g_stats_path[0] = 0;
      g_stage_count = 0;
    }
  } restore{fatal, old_sa};

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
  for (size_t k = 0; k < n; k++) g_stage_pids[k] = -1;
  g_stage_count = (sig_atomic_t)n;
  for (size_t k = 0; k < n; k++) {
    StageProc& p = sim->procs[k];
    p.fd_in = rx[k][0];
    p.fd_out = tx[k][1];
    p.boot_id = (uint32_t)(getpid() & 0xFFFF) * 64 + (uint32_t)k + 1;
    p.args = {o.exe,      "stage",
              "--image",  o.images[k],
              "--fd-in",  std::to_string(p.fd_in),
              "--fd-out", std::to_string(p.fd_out),
              "--batch",  std::to_string(o.batch)};
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
  std::string dead;  // workers that died on their own (not killed by us)
  {
    std::lock_guard<std::mutex> lock(sim->mu);
    for (size_t k = 1; k < n; k++) {
      if (sim->procs[k].pid > 0) {
        int ws = 0;
        if (waitpid(sim->procs[k].pid, &ws, WNOHANG) == sim->procs[k].pid) {
          dead += "; stage " + std::to_string(k) + " (" + o.images[k] + ") " + describe_exit(ws);
        } else {
          kill(sim->procs[k].pid, SIGKILL);
          waitpid(sim->procs[k].pid, nullptr, 0);
        }
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
  const uint64_t positions = num(head, "completed");
  const double per = positions ? 1.0 / positions : 0;
  std::printf(
      "\n--- simulated ring: %zu stages, %u baud, %.1f s wall clock, %llu positions (%llu prompt + "
      "%llu generated)\n",
      n, o.baud, elapsed, (unsigned long long)positions, (unsigned long long)num(head, "prompt"),
      (unsigned long long)num(head, "generated"));
  // The prompt: to the first generated token's logits (the head's clock), and how it was sent.
  std::printf(
      "prompt: %llu positions in %.1f ms to the first token's logits, %llu chunk%s of up to "
      "%u positions (--batch %u)\n",
      (unsigned long long)num(head, "prompt"), num(head, "prompt_us") / 1e3,
      (unsigned long long)num(head, "chunks"), num(head, "chunks") == 1 ? "" : "s",
      chunk_positions(o.batch, dim), o.batch);
  if (num(head, "classify_rounds") > 0) {  // the classifier split across the ring
    std::printf(
        "classifier: %llu CLASSIFY rounds, %llu logits gathered, %llu sampling rounds "
        "(%llu candidate fetches, %llu restarts after a reboot)\n",
        (unsigned long long)num(head, "classify_rounds"),
        (unsigned long long)num(head, "logits_rows"),
        (unsigned long long)num(head, "sample_rounds"),
        (unsigned long long)num(head, "sample_fetches"),
        (unsigned long long)num(head, "sample_restarts"));
  }
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
      "totals: crc_rejects=%llu hop_resent=%llu head_hop_naks=%llu head_mended=%llu "
      "head_lost=%llu "
      "retransmissions=%llu replays=%llu reboots=%u timeouts=%llu\n",
      (unsigned long long)crc_total, (unsigned long long)resent_total,
      (unsigned long long)num(head, "naks"), (unsigned long long)num(head, "mended"),
      (unsigned long long)num(head, "hop_lost"), (unsigned long long)num(head, "retransmissions"),
      (unsigned long long)num(head, "replays"), sim->reboots,
      (unsigned long long)num(head, "timeouts"));
  if (sim->reboots < o.reboots.size()) {
    std::printf("note: %u of %u --reboot requests happened: the story ended after %llu tokens\n",
                sim->reboots, (unsigned)o.reboots.size(),
                (unsigned long long)num(head, "generated"));
  }
  if (head_rc != 0) {
    *err = "the head (stage 0) " + describe_exit(status) + dead;
    if (!dead.empty()) *err += ": a stage that dies leaves the ring without an answer";
  }
  return head_rc;
}

}  // namespace llmwire
