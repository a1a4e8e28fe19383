#include "platform/host/serial_port.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#if defined(__APPLE__)
#include <IOKit/serial/ioss.h>
#endif

namespace llmwire {
namespace {

struct BaudEntry {
  uint32_t baud;
  speed_t code;
};

// Rates the termios headers of this host define. On macOS only up to 230400 have B-constants;
// higher rates are set with IOSSIOSPEED after the rest of the configuration.
const BaudEntry kBauds[] = {
    {9600, B9600},       {19200, B19200},   {38400, B38400},
    {57600, B57600},     {115200, B115200}, {230400, B230400},
#ifdef B460800
    {460800, B460800},
#endif
#ifdef B500000
    {500000, B500000},
#endif
#ifdef B576000
    {576000, B576000},
#endif
#ifdef B921600
    {921600, B921600},
#endif
#ifdef B1000000
    {1000000, B1000000},
#endif
#ifdef B1152000
    {1152000, B1152000},
#endif
#ifdef B1500000
    {1500000, B1500000},
#endif
#ifdef B2000000
    {2000000, B2000000},
#endif
#ifdef B2500000
    {2500000, B2500000},
#endif
#ifdef B3000000
    {3000000, B3000000},
#endif
#ifdef B3500000
    {3500000, B3500000},
#endif
#ifdef B4000000
    {4000000, B4000000},
#endif
};

#if defined(__APPLE__)
const uint32_t kAppleExtraBauds[] = {460800, 500000, 921600, 1000000, 1500000, 2000000};
#endif

bool find_baud(uint32_t baud, speed_t* code) {
  for (const BaudEntry& e : kBauds) {
    if (e.baud == baud) {
      *code = e.code;
      return true;
    }
  }
  return false;
}

std::string open_error(const std::string& path, int err) {
  std::string msg = "cannot open " + path + ": " + strerror(err);
  switch (err) {
    case EACCES:
    case EPERM:
#if defined(__APPLE__)
      msg += " — check the device's permissions (ls -l " + path + ")";
#else
      msg +=
          " — add yourself to the dialout group (sudo usermod -aG dialout $USER; the group is "
          "uucp on Arch), then log out and back in";
#endif
      break;
    case ENOENT:
    case ENXIO:
    case ENODEV:
#if defined(__APPLE__)
      msg += " — is the board plugged in? Look for /dev/cu.usbserial-* or /dev/cu.usbmodem*";
#else
      msg += " — is the board plugged in? Look for /dev/ttyUSB* or /dev/ttyACM*";
#endif
      break;
    case EBUSY:
      msg += " — another program (a serial monitor?) has it open; close it and retry";
      break;
    default:
      break;
  }
  return msg;
}

}  // namespace

bool SerialPort::baud_supported(uint32_t baud) {
  speed_t code;
  if (find_baud(baud, &code)) return true;
#if defined(__APPLE__)
  for (uint32_t b : kAppleExtraBauds) {
    if (b == baud) return true;
  }
#endif
  return false;
}

std::string SerialPort::supported_bauds() {
  std::string s;
  for (const BaudEntry& e : kBauds) {
    if (!s.empty()) s += ", ";
    s += std::to_string(e.baud);
  }
#if defined(__APPLE__)
  for (uint32_t b : kAppleExtraBauds) s += ", " + std::to_string(b);
#endif
  return s;
}

bool SerialPort::open(const std::string& path, uint32_t baud, std::string* err) {
  close();
  path_ = path;
  baud_ = 0;
  auto fail_with = [&](const std::string& m, int fd) {
    if (fd >= 0) ::close(fd);
    if (err) *err = m;
    return false;
  };
  if (!baud_supported(baud)) {
    return fail_with(
        "unsupported baud rate " + std::to_string(baud) + " (supported: " + supported_bauds() + ")",
        -1);
  }
  const int fd = ::open(path.c_str(), O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return fail_with(open_error(path, errno), -1);
  if (!isatty(fd)) return fail_with(path + " is not a serial port (not a tty)", fd);
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) {
      return fail_with("cannot open " + path +
                           ": in use by another program (a serial monitor, or another "
                           "llmwire?); close it and retry",
                       fd);
    }
    // Some filesystems / drivers do not support flock: carry on unlocked.
  }

  struct termios t;
  if (tcgetattr(fd, &t) != 0) {
    return fail_with("cannot configure " + path + ": " + strerror(errno), fd);
  }
  cfmakeraw(&t);  // no echo, no line editing, no CR/LF translation, no signals, 8 bits
  t.c_cflag &= ~(tcflag_t)(CSIZE | PARENB | CSTOPB | HUPCL);
#ifdef CRTSCTS
  t.c_cflag &= ~(tcflag_t)CRTSCTS;
#endif
  t.c_cflag |= CS8 | CLOCAL | CREAD;
  t.c_iflag &= ~(tcflag_t)(IXON | IXOFF | IXANY | INPCK | ISTRIP);
  t.c_iflag |= IGNBRK;
  t.c_cc[VMIN] = 0;  // reads are driven by poll(); never block in read()
  t.c_cc[VTIME] = 0;
  speed_t code = B115200;
  const bool has_code = find_baud(baud, &code);
  cfsetispeed(&t, code);
  cfsetospeed(&t, code);
  if (tcsetattr(fd, TCSANOW, &t) != 0) {
    return fail_with("cannot configure " + path + " for " + std::to_string(baud) +
                         " baud 8N1: " + strerror(errno),
                     fd);
  }
#if defined(__APPLE__)
  if (!has_code) {
    speed_t s = baud;
    if (ioctl(fd, IOSSIOSPEED, &s) != 0) {
      return fail_with(
          "cannot set " + path + " to " + std::to_string(baud) + " baud: " + strerror(errno), fd);
    }
  }
#else
  (void)has_code;
#endif
  // Check what the driver accepted: some USB-serial adapters refuse high rates.
  struct termios got;
  if (tcgetattr(fd, &got) == 0 && has_code && cfgetospeed(&got) != code) {
    return fail_with("cannot set " + path + " to " + std::to_string(baud) +
                         " baud: the driver refused it (try 115200 or 460800)",
                     fd);
  }
  tcflush(fd, TCIOFLUSH);  // drop whatever a previous user or the board's boot left behind
  adopt(fd, true);
  baud_ = baud;
  if (err) err->clear();
  return true;
}

}  // namespace llmwire
