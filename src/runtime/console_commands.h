// The head's console language: a line of text is a story opening; a line starting with '/'
// is a command. Parsing is pure (no I/O, no libc number parsing) so the board and the host
// unit tests run the same code, and a bad value gets a sentence, never a crash.
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace llmwire {

// What the user may set, with the ranges the console enforces.
struct StorySettings {
  float temperature = 1.0f;  // 0 (greedy) .. 2
  float topp = 0.9f;         // 0 .. 1 (0 or 1: plain sampling)
  uint32_t max_new = 256;    // 1 .. the context length
  uint64_t seed = 1;         // 1 .. 2^64-1
  uint32_t speculate = 0;    // 0 (off) .. kMaxSpeculate: longest prompt-lookup guess
};

// Upper bound of /spec (the board's StageOptions::speculate may be lower).
constexpr uint32_t kMaxSpeculate = 31;

enum class CommandKind {
  kNone,      // empty line
  kStory,     // text: tell a story continuing it
  kTemp,      // /temp X
  kTopp,      // /topp X
  kLen,       // /len N
  kSeed,      // /seed N
  kSpec,      // /spec N
  kStats,     // /stats
  kSelftest,  // /selftest
  kReset,     // /reset
  kHelp,      // /help
  kInvalid,   // message says why
};

struct Command {
  CommandKind kind = CommandKind::kNone;
  float f = 0.0f;              // /temp, /topp
  uint64_t u = 0;              // /len, /seed, /spec
  const char* text = nullptr;  // kStory: the line without its end-of-line characters
  size_t len = 0;
};

// Parses one line (without or with a trailing "\r\n"). max_len is the context length: /len
// above it is refused. On kInvalid, msg holds what is wrong and what to type instead.
Command parse_command(const char* line, size_t len, uint32_t max_len, char* msg, size_t cap);

// Applies a setting command to `s` (kTemp, kTopp, kLen, kSeed, kSpec); false for other kinds.
bool apply_setting(const Command& c, StorySettings* s);

// Decimal "d.ddd" with at most 7 significant digits, correctly rounded like strtof (the value
// is an exact integer over an exact power of ten, divided once). False if malformed.
bool parse_decimal(const char* s, size_t len, float* out);
// Unsigned decimal integer up to 2^64-1. False if malformed or too large.
bool parse_u64(const char* s, size_t len, uint64_t* out);

extern const char kConsoleHelp[];

}  // namespace llmwire
