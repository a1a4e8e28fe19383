// Byte transports: the in-memory queue link, FdLink over pipes and socketpairs, and the
// serial-port transport over a pseudo-terminal pair (the slave configured by SerialPort
// exactly as a /dev/ttyUSB0 would be), each carrying real frames through a FrameReceiver.
#include <errno.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <chrono>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "link/frame.h"
#include "link/messages.h"
#include "platform/host/fd_link.h"
#include "platform/host/memory_link.h"
#include "platform/host/pty_pair.h"
#include "platform/host/serial_port.h"

using namespace llmwire;

namespace {

struct Got {
  uint8_t type;
  uint16_t seq;
  std::vector<uint8_t> payload;
};

struct Collector : FrameSink {
  std::vector<Got> frames;
  void on_frame(const Frame& f) override {
    frames.push_back({f.type, f.seq, std::vector<uint8_t>(f.payload, f.payload + f.len)});
  }
};

uint32_t ms_now() {
  using namespace std::chrono;
  return (uint32_t)duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count();
}

// Payload i of a test stream: deterministic, covers every byte value (CR, LF, XON, XOFF,
// ^C, DEL, 0xA5 0x5A...) so any tty translation would corrupt it.
std::vector<uint8_t> payload_for(uint32_t i) {
  std::vector<uint8_t> p(12 + 4 * (64 + i % 300));
  for (size_t k = 0; k < p.size(); k++) p[k] = (uint8_t)(k * 7 + i * 13 + (k >> 8));
  return p;
}

// Sends `count` frames with payload_for(i) through `link`, retrying while the link is full
// (MemoryLink) — for real links write() blocks instead.
void send_stream(ByteLink* link, uint32_t count, bool retry_when_full) {
  std::vector<uint8_t> buf(kMaxFrameSize);
  FrameWriter w(link, buf.data(), buf.size());
  for (uint32_t i = 0; i < count; i++) {
    auto p = payload_for(i);
    while (!w.send((uint8_t)MsgType::kActivation, p.data(), p.size())) {
      ASSERT_TRUE(retry_when_full) << "write failed at frame " << i;
      std::this_thread::yield();
    }
  }
}

// Receives until `count` frames arrived or `timeout_ms` passed; checks them.
void receive_stream(ByteLink* link, uint32_t count, uint32_t timeout_ms) {
  Collector sink;
  auto rx = std::make_unique<FrameReceiver>(&sink);
  std::vector<uint8_t> buf(4096);
  const uint32_t start = ms_now();
  while (sink.frames.size() < count && ms_now() - start < timeout_ms) {
    const size_t n = link->read(buf.data(), buf.size(), 50);
    rx->push(buf.data(), n, ms_now());
    if (!link->ok()) break;
  }
  ASSERT_EQ(sink.frames.size(), count);
  for (uint32_t i = 0; i < count; i++) {
    ASSERT_EQ(sink.frames[i].seq, (uint16_t)i);
    ASSERT_EQ(sink.frames[i].payload, payload_for(i)) << i;
  }
  EXPECT_EQ(rx->counters().crc_errors, 0u);
  EXPECT_EQ(rx->counters().resyncs, 0u);
}

}  // namespace

// ---- MemoryLink ----

TEST(MemoryLink, AllOrNothingWritesAndWraparound) {
  uint8_t storage[100];
  ByteQueue q(storage, sizeof storage);
  std::deque<uint8_t> model;
  uint64_t s = 1;
  uint8_t in[150], out[150];
  uint8_t next = 0;
  for (int step = 0; step < 20000; step++) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    const size_t n = (size_t)(s >> 33) % 120;
    if ((s >> 20) & 1) {
      for (size_t i = 0; i < n; i++) in[i] = next++;
      const bool fits = model.size() + n <= 100;
      ASSERT_EQ(q.push(in, n), fits);
      if (fits)
        model.insert(model.end(), in, in + n);
      else
        next = (uint8_t)(next - n);
    } else {
      const size_t got = q.pop(out, n);
      ASSERT_EQ(got, std::min(n, model.size()));
      for (size_t i = 0; i < got; i++) {
        ASSERT_EQ(out[i], model.front());
        model.pop_front();
      }
    }
    ASSERT_EQ(q.size(), model.size());
    ASSERT_EQ(q.space(), 100 - model.size());
  }
}

TEST(MemoryLink, PairCarriesFramesBothWaysAndCloses) {
  auto pair = std::make_unique<MemoryLinkPair<1 << 16>>();
  send_stream(&pair->a, 20, false);
  receive_stream(&pair->b, 20, 1000);
  send_stream(&pair->b, 20, false);
  receive_stream(&pair->a, 20, 1000);
  uint8_t x[4] = {1, 2, 3, 4};
  uint8_t y[4];
  EXPECT_EQ(pair->a.read(y, 4, 100), 0u);  // empty: returns at once
  ASSERT_TRUE(pair->a.write(x, 4));
  pair->a.close();
  EXPECT_FALSE(pair->a.ok());
  EXPECT_FALSE(pair->a.write(x, 4));
  EXPECT_TRUE(pair->b.ok());  // still has bytes to read
  EXPECT_EQ(pair->b.read(y, 4, 0), 4u);
  EXPECT_FALSE(pair->b.ok());
}

TEST(MemoryLink, OneWriterThreadOneReaderThread) {
  auto pair = std::make_unique<MemoryLinkPair<3000>>();  // smaller than two frames: contention
  const uint32_t count = 5000;
  std::thread writer([&] { send_stream(&pair->a, count, true); });
  receive_stream(&pair->b, count, 60000);
  writer.join();
}

// ---- FdLink ----

TEST(FdLink, PipeCarriesFramesTimesOutAndReportsClose) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  FdLink r(fds[0], true);
  auto w = std::make_unique<FdLink>(fds[1], true);
  std::thread writer([&] { send_stream(w.get(), 200, false); });  // > pipe buffer: blocks
  receive_stream(&r, 200, 10000);
  writer.join();

  uint8_t b[16];
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(r.read(b, sizeof b, 60), 0u);
  const auto waited = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(waited, std::chrono::milliseconds(55));
  EXPECT_TRUE(r.ok());

  w.reset();  // writer closes
  EXPECT_EQ(r.read(b, sizeof b, 1000), 0u);
  EXPECT_FALSE(r.ok());
  EXPECT_NE(r.error().find("closed"), std::string::npos) << r.error();
}

TEST(FdLink, WriteToClosedPipeFailsWithoutSigpipe) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  close(fds[0]);
  FdLink w(fds[1], true);
  const uint8_t b[8] = {};
  EXPECT_FALSE(w.write(b, sizeof b));  // the process is still alive: no SIGPIPE
  EXPECT_FALSE(w.ok());
  EXPECT_NE(w.error().find("Broken pipe"), std::string::npos) << w.error();
}

TEST(FdLink, SocketPairBothDirectionsAtOnce) {
  int fds[2];
  std::string err;
  ASSERT_TRUE(make_socket_pair(fds, &err)) << err;
  FdLink a(fds[0], true), b(fds[1], true);
  const uint32_t count = 2000;  // ~1.7 MB each way: both sides block on full buffers
  std::thread ta([&] { send_stream(&a, count, false); });
  std::thread tb([&] { send_stream(&b, count, false); });
  std::thread rb([&] { receive_stream(&b, count, 30000); });
  receive_stream(&a, count, 30000);
  ta.join();
  tb.join();
  rb.join();
  b.close();  // peer gone: reads see end of stream, writes fail (no SIGPIPE)
  uint8_t x[4] = {1, 2, 3, 4};
  EXPECT_EQ(a.read(x, 4, 1000), 0u);
  EXPECT_FALSE(a.ok());
  EXPECT_FALSE(a.write(x, 4));
}

// ---- SerialPort over a pseudo-terminal ----

TEST(SerialPort, PtyAt460800CarriesFramesBothWays) {
  PtyPair pty;
  std::string err;
  ASSERT_TRUE(pty.open(&err)) << err;
  SerialPort port;
  ASSERT_TRUE(port.open(pty.slave_path(), 460800, &err)) << err;
  EXPECT_EQ(port.baud(), 460800u);

  struct termios t;
  ASSERT_EQ(tcgetattr(port.fd(), &t), 0);
  EXPECT_EQ(cfgetospeed(&t), (speed_t)B460800);
  EXPECT_EQ(cfgetispeed(&t), (speed_t)B460800);
  EXPECT_EQ(t.c_cflag & CSIZE, (tcflag_t)CS8);
  EXPECT_EQ(t.c_cflag & (PARENB | CSTOPB | HUPCL), 0u);
  EXPECT_EQ(t.c_lflag & (ICANON | ECHO | ISIG | IEXTEN), 0u);
  EXPECT_EQ(t.c_iflag & (ICRNL | INLCR | IXON | IXOFF | ISTRIP), 0u);
  EXPECT_EQ(t.c_oflag & OPOST, 0u);

  FdLink master(pty.master_fd(), false);
  // Board -> host: the "board" writes on the master, the host reads through SerialPort.
  {
    std::thread board([&] { send_stream(&master, 300, false); });
    receive_stream(&port, 300, 20000);
    board.join();
  }
  // Host -> board.
  {
    std::thread host([&] { send_stream(&port, 300, false); });
    receive_stream(&master, 300, 20000);
    host.join();
  }
}

TEST(SerialPort, OpensAtEveryLinkBaud) {
  PtyPair pty;
  std::string err;
  ASSERT_TRUE(pty.open(&err)) << err;
  const std::pair<uint32_t, speed_t> bauds[] = {{115200, B115200},   {230400, B230400},
                                                {460800, B460800},   {921600, B921600},
                                                {1000000, B1000000}, {2000000, B2000000}};
  for (const auto& b : bauds) {
    SerialPort port;
    ASSERT_TRUE(port.open(pty.slave_path(), b.first, &err)) << b.first << ": " << err;
    struct termios t;
    ASSERT_EQ(tcgetattr(port.fd(), &t), 0);
    EXPECT_EQ(cfgetospeed(&t), b.second) << b.first;
    EXPECT_TRUE(SerialPort::baud_supported(b.first));
  }
}

TEST(SerialPort, ErrorsSayWhatToDo) {
  SerialPort port;
  std::string err;
  EXPECT_FALSE(port.open("/dev/ttyLLMWIRE_NO_SUCH_PORT", 460800, &err));
  EXPECT_NE(err.find("cannot open /dev/ttyLLMWIRE_NO_SUCH_PORT: No such file or directory"),
            std::string::npos)
      << err;
  EXPECT_NE(err.find("plugged in"), std::string::npos) << err;

  EXPECT_FALSE(port.open("/dev/null", 460800, &err));
  EXPECT_NE(err.find("not a serial port"), std::string::npos) << err;

  PtyPair pty;
  ASSERT_TRUE(pty.open(&err)) << err;
  EXPECT_FALSE(port.open(pty.slave_path(), 12345, &err));
  EXPECT_NE(err.find("unsupported baud rate 12345"), std::string::npos) << err;
  EXPECT_NE(err.find("460800"), std::string::npos) << err;
  EXPECT_FALSE(SerialPort::baud_supported(12345));

  // A second opener is refused while the first holds the port.
  ASSERT_TRUE(port.open(pty.slave_path(), 115200, &err)) << err;
  SerialPort other;
  EXPECT_FALSE(other.open(pty.slave_path(), 115200, &err));
  EXPECT_NE(err.find("in use"), std::string::npos) << err;
  port.close();
  EXPECT_TRUE(other.open(pty.slave_path(), 115200, &err)) << err;

  if (geteuid() != 0) {  // root ignores file permissions
    char path[] = "/tmp/llmwire-noperm-XXXXXX";
    const int fd = mkstemp(path);
    ASSERT_GE(fd, 0);
    close(fd);
    chmod(path, 0);
    EXPECT_FALSE(port.open(path, 115200, &err));
    EXPECT_NE(err.find("Permission denied"), std::string::npos) << err;
    EXPECT_NE(err.find("dialout"), std::string::npos) << err;
    unlink(path);
  }
}

TEST(SerialPort, HangUpEndsTheLink) {
  PtyPair pty;
  std::string err;
  ASSERT_TRUE(pty.open(&err)) << err;
  SerialPort port;
  ASSERT_TRUE(port.open(pty.slave_path(), 460800, &err)) << err;
  // The other end goes away (cable pulled / simulator exits).
  close(pty.release_master());
  uint8_t b[16];
  EXPECT_EQ(port.read(b, sizeof b, 1000), 0u);
  EXPECT_FALSE(port.ok());
  EXPECT_FALSE(port.error().empty());

  // And the other way round: the master sees the slave side vanish.
  PtyPair pty2;
  ASSERT_TRUE(pty2.open(&err)) << err;
  FdLink master(pty2.master_fd(), false);
  {
    SerialPort p2;
    ASSERT_TRUE(p2.open(pty2.slave_path(), 460800, &err)) << err;
  }
  pty2.release_slave_hold();
  EXPECT_EQ(master.read(b, sizeof b, 1000), 0u);
  EXPECT_FALSE(master.ok());
}
