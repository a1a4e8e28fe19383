// The head's side of the user: finds the ring, then turns console lines into stories (streamed
// as they are generated, then "[N tokens, X tok/s, K boards]") or runs console commands. The
// board, the emulated MCU and `llmwire stage` run this same loop; a failure prints a sentence
// and the console stays usable.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "engine/generator.h"
#include "runtime/console_commands.h"
#include "runtime/stage.h"

namespace llmwire {

struct StoryResult {
  GenerateStats gen;
  size_t n_tokens = 0;  // prompt + generated, in stage.tokens()
  uint32_t digest = 0;  // CRC-32C of the token ids (prompt and story)
};

class HeadConsole {
 public:
  // `stage` must be a booted head. Text goes to emit (default: the platform's console).
  void init(Stage* stage, void (*emit)(void* ctx, const char* s, size_t n) = nullptr,
            void* emit_ctx = nullptr);

  // HELLO round (a one-board model needs none). On failure writes why into msg.
  Status connect(char* msg, size_t cap);
  bool connected() const { return connected_; }

  // One story continuing `prompt` with the current settings. On failure msg says why.
  Status tell(const char* prompt, size_t len, StoryResult* out, char* msg, size_t cap);

  // One console line: a story or a command; everything it prints goes to emit.
  void handle_line(const char* line, size_t len);
  // Reads console lines until the console closes or stop(ctx) is true.
  void run(bool (*stop)(void* ctx), void* ctx);

  StorySettings& settings() { return settings_; }
  void print(const char* s);

 private:
  void print_stats();
  void run_selftest();
  void printf_line(const char* fmt, ...);

  Stage* stage_ = nullptr;
  void (*emit_)(void*, const char*, size_t) = nullptr;
  void* emit_ctx_ = nullptr;
  StorySettings settings_;
  bool connected_ = false;
  GenerateStats last_;
  char line_[1100];
  size_t line_len_ = 0;
  bool line_overflow_ = false;
};

// The story /selftest tells: fixed prompt, greedy, 32 tokens. PC tools compute the same digest.
constexpr char kSelftestPrompt[] = "Once upon a time";
constexpr uint32_t kSelftestTokens = 32;

}  // namespace llmwire
