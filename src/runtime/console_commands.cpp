#include "runtime/console_commands.h"

#include <stdio.h>
#include <string.h>

namespace llmwire {

const char kConsoleHelp[] =
    "Type a story opening and press Enter: the model continues it.\n"
    "  /temp X    temperature, 0 (always the likeliest word) to 2\n"
    "  /topp X    top-p cutoff, 0 to 1 (0 or 1: sample from every word)\n"
    "  /len N     longest story in tokens, 1 to the context length\n"
    "  /seed N    random seed, 1 or more (same seed, same story)\n"
    "  /spec N    guess up to N tokens from earlier text, checked in one pass (0: off)\n"
    "  /stats     memory, settings, speculation, per-stage times and link counters\n"
    "  /selftest  fixed prompt and seed; compares the story with the image's digest\n"
    "  /reset     forget the story so far and restore the default settings\n"
    "  /help      this text\n";

namespace {

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

void trim(const char** s, size_t* len) {
  while (*len && is_space(**s)) {
    (*s)++;
    (*len)--;
  }
  while (*len && is_space((*s)[*len - 1])) (*len)--;
}

bool word_is(const char* w, size_t n, const char* name) {
  return strlen(name) == n && memcmp(w, name, n) == 0;
}

Command invalid(char* msg, size_t cap, const char* fmt, const char* a) {
  snprintf(msg, cap, fmt, a);
  Command c;
  c.kind = CommandKind::kInvalid;
  return c;
}

}  // namespace

bool parse_u64(const char* s, size_t len, uint64_t* out) {
  if (len == 0 || len > 20) return false;
  uint64_t v = 0;
  for (size_t i = 0; i < len; i++) {
    if (s[i] < '0' || s[i] > '9') return false;
    const uint64_t d = (uint64_t)(s[i] - '0');
    if (v > (UINT64_MAX - d) / 10) return false;
    v = v * 10 + d;
  }
  *out = v;
  return true;
}

bool parse_decimal(const char* s, size_t len, float* out) {
  uint32_t mant = 0, digits = 0, frac = 0;
  bool dot = false, any = false;
  for (size_t i = 0; i < len; i++) {
    const char c = s[i];
    if (c == '.' && !dot) {
      dot = true;
      continue;
    }
    if (c < '0' || c > '9') return false;
    any = true;
    if (mant == 0 && c == '0') {  // leading zeros carry no significant digit
      if (dot) frac++;
      continue;
    }
    if (++digits > 7) return false;
    mant = mant * 10 + (uint32_t)(c - '0');
    if (dot) frac++;
  }
  if (!any || frac > 10) return false;
  // mant < 2^24 and 10^frac <= 10^10 are exact floats: one IEEE division rounds correctly.
  float p = 1.0f;
  for (uint32_t i = 0; i < frac; i++) p = p * 10.0f;
  *out = (float)mant / p;
  return true;
}

Command parse_command(const char* line, size_t len, uint32_t max_len, char* msg, size_t cap) {
  msg[0] = 0;
  trim(&line, &len);
  Command c;
  if (len == 0) return c;
  if (line[0] != '/') {
    c.kind = CommandKind::kStory;
    c.text = line;
    c.len = len;
    return c;
  }
  // "/name [value]"
  size_t n = 1;
  while (n < len && !is_space(line[n])) n++;
  const char* name = line + 1;
  const size_t name_len = n - 1;
  const char* arg = line + n;
  size_t arg_len = len - n;
  trim(&arg, &arg_len);
  char shown[24];
  snprintf(shown, sizeof shown, "%.*s", (int)(name_len < 16 ? name_len : 16), name);

  struct NoArg {
    const char* name;
    CommandKind kind;
  };
  static const NoArg kNoArg[] = {{"stats", CommandKind::kStats},
                                 {"selftest", CommandKind::kSelftest},
                                 {"reset", CommandKind::kReset},
                                 {"help", CommandKind::kHelp}};
  for (const NoArg& k : kNoArg) {
    if (!word_is(name, name_len, k.name)) continue;
    if (arg_len) return invalid(msg, cap, "/%s takes no value", k.name);
    c.kind = k.kind;
    return c;
  }
  const bool is_temp = word_is(name, name_len, "temp"), is_topp = word_is(name, name_len, "topp");
  if (is_temp || is_topp) {
    const char* cmd = is_temp ? "temp" : "topp";
    if (!arg_len) {
      return invalid(msg, cap,
                     is_temp ? "/%s needs a value, e.g. /temp 0.8 (0 to 2)"
                             : "/%s needs a value, e.g. /topp 0.9 (0 to 1)",
                     cmd);
    }
    float v = 0;
    if (!parse_decimal(arg, arg_len, &v) || v > (is_temp ? 2.0f : 1.0f)) {
      return invalid(msg, cap,
                     is_temp ? "/%s takes a number from 0 to 2 such as 0.8"
                             : "/%s takes a number from 0 to 1 such as 0.9",
                     cmd);
    }
    c.kind = is_temp ? CommandKind::kTemp : CommandKind::kTopp;
    c.f = v;
    return c;
  }
  const bool is_len = word_is(name, name_len, "len"), is_seed = word_is(name, name_len, "seed");
  if (is_len || is_seed) {
    uint64_t v = 0;
    if (!arg_len || !parse_u64(arg, arg_len, &v) || v == 0) {
      if (is_len) {
        snprintf(msg, cap, "/len takes a whole number of tokens from 1 to %u", (unsigned)max_len);
        c.kind = CommandKind::kInvalid;
        return c;
      }
      return invalid(msg, cap, "/%s takes a whole number from 1 to 18446744073709551615", "seed");
    }
    if (is_len && v > max_len) {
      snprintf(msg, cap, "/len %.*s is longer than the context: use 1 to %u",
               (int)(arg_len < 12 ? arg_len : 12), arg, (unsigned)max_len);
      c.kind = CommandKind::kInvalid;
      return c;
    }
    c.kind = is_len ? CommandKind::kLen : CommandKind::kSeed;
    c.u = v;
    return c;
  }
  if (word_is(name, name_len, "spec")) {
    uint64_t v = 0;
    if (!arg_len || !parse_u64(arg, arg_len, &v) || v > kMaxSpeculate) {
      snprintf(msg, cap, "/spec takes a whole number of guessed tokens from 0 (off) to %u",
               (unsigned)kMaxSpeculate);
      c.kind = CommandKind::kInvalid;
      return c;
    }
    c.kind = CommandKind::kSpec;
    c.u = v;
    return c;
  }
  return invalid(msg, cap, "unknown command /%s: type /help for the list", shown);
}

bool apply_setting(const Command& c, StorySettings* s) {
  switch (c.kind) {
    case CommandKind::kTemp:
      s->temperature = c.f;
      return true;
    case CommandKind::kTopp:
      s->topp = c.f;
      return true;
    case CommandKind::kLen:
      s->max_new = (uint32_t)c.u;
      return true;
    case CommandKind::kSeed:
      s->seed = c.u;
      return true;
    case CommandKind::kSpec:
      s->speculate = (uint32_t)c.u;
      return true;
    default:
      return false;
  }
}

}  // namespace llmwire
