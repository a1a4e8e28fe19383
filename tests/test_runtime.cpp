// The portable stage runtime: console command parsing, stage bring-up and its refusals, the
// memory plan per region, and the head console telling a story, all through the platform
// contract as a board would use it.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstring>
#include <string>
#include <vector>

#include "engine/generator.h"
#include "platform/host/host_stage.h"
#include "platform/host/mapped_file.h"
#include "runtime/console_commands.h"
#include "runtime/head_console.h"
#include "test_util.h"
#include "tools/host_model.h"
#include "tools/split.h"

using namespace llmwire;
using llmwire::test::TempDir;

namespace {

Command parse(const std::string& line, uint32_t max_len = 256, std::string* msg = nullptr) {
  char buf[256];
  const Command c = parse_command(line.data(), line.size(), max_len, buf, sizeof buf);
  if (msg) *msg = buf;
  return c;
}

}  // namespace

TEST(ConsoleCommands, StoriesAndEmptyLines) {
  const std::string line = "  Once upon a time\r\n";
  Command c = parse(line);
  EXPECT_EQ(c.kind, CommandKind::kStory);
  EXPECT_EQ(std::string(c.text, c.len), "Once upon a time");
  EXPECT_EQ(parse("").kind, CommandKind::kNone);
  EXPECT_EQ(parse(" \r\n").kind, CommandKind::kNone);
}

TEST(ConsoleCommands, ValidSettings) {
  Command c = parse("/temp 0.8");
  ASSERT_EQ(c.kind, CommandKind::kTemp);
  EXPECT_EQ(c.f, 0.8f);  // the compiler's correctly rounded literal
  c = parse("/topp 1");
  ASSERT_EQ(c.kind, CommandKind::kTopp);
  EXPECT_EQ(c.f, 1.0f);
  c = parse("/temp 0");
  ASSERT_EQ(c.kind, CommandKind::kTemp);
  EXPECT_EQ(c.f, 0.0f);
  c = parse("/len 256", 256);
  ASSERT_EQ(c.kind, CommandKind::kLen);
  EXPECT_EQ(c.u, 256u);
  c = parse("/seed 18446744073709551615");
  ASSERT_EQ(c.kind, CommandKind::kSeed);
  EXPECT_EQ(c.u, UINT64_MAX);
  EXPECT_EQ(parse("/stats").kind, CommandKind::kStats);
  EXPECT_EQ(parse("/selftest").kind, CommandKind::kSelftest);
  EXPECT_EQ(parse("/reset").kind, CommandKind::kReset);
  EXPECT_EQ(parse("/help\r").kind, CommandKind::kHelp);
  StorySettings s;
  EXPECT_TRUE(apply_setting(parse("/temp 1.5"), &s));
  EXPECT_TRUE(apply_setting(parse("/len 12"), &s));
  EXPECT_EQ(s.temperature, 1.5f);
  EXPECT_EQ(s.max_new, 12u);
  EXPECT_FALSE(apply_setting(parse("/help"), &s));
}

TEST(ConsoleCommands, InvalidAndOutOfRangeSayWhy) {
  std::string msg;
  struct Case {
    const char* line;
    const char* says;
  } cases[] = {
      {"/temp", "needs a value"},
      {"/temp -1", "from 0 to 2"},
      {"/temp 2.5", "from 0 to 2"},
      {"/temp abc", "from 0 to 2"},
      {"/temp 0.8.1", "from 0 to 2"},
      {"/temp nan", "from 0 to 2"},
      {"/topp 1.01", "from 0 to 1"},
      {"/topp", "needs a value"},
      {"/len 0", "1 to 256"},
      {"/len 257", "longer than the context"},
      {"/len 99999999999999999999999", "1 to 256"},
      {"/seed 0", "1 to"},
      {"/seed -5", "1 to"},
      {"/seed 18446744073709551616", "1 to"},
      {"/stats now", "takes no value"},
      {"/frobnicate", "unknown command /frobnicate"},
      {"/", "unknown command"},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(parse(c.line, 256, &msg).kind, CommandKind::kInvalid) << c.line;
    EXPECT_NE(msg.find(c.says), std::string::npos) << c.line << " -> " << msg;
  }
  // A very long unknown command name is shown cut, never overflowing.
  const std::string long_name = "/" + std::string(5000, 'x');
  EXPECT_EQ(parse(long_name, 256, &msg).kind, CommandKind::kInvalid);
  EXPECT_LT(msg.size(), 100u);
}

TEST(ConsoleCommands, DecimalsMatchStrtof) {
  // Our parser (no libc on the board) must give the bits the host CLI's strtof gives.
  const char* values[] = {"0.1",       "0.3",  "0.7",      "0.8", "0.9", "0.95", "1.1", "1.999999",
                          "0.0000001", "1.23", "0.333333", "1.0", "2",   "0.05", ".5",  "00.25"};
  for (const char* v : values) {
    float ours = -1;
    ASSERT_TRUE(parse_decimal(v, strlen(v), &ours)) << v;
    EXPECT_EQ(ours, strtof(v, nullptr)) << v;
  }
  srand(3);
  for (int i = 0; i < 20000; i++) {
    char buf[32];
    snprintf(buf, sizeof buf, "%d.%0*d", rand() % 3, 1 + rand() % 6, rand() % 1000000);
    float ours = -1;
    ASSERT_TRUE(parse_decimal(buf, strlen(buf), &ours)) << buf;
    ASSERT_EQ(ours, strtof(buf, nullptr)) << buf;
  }
  float f;
  EXPECT_FALSE(parse_decimal("", 0, &f));
  EXPECT_FALSE(parse_decimal(".", 1, &f));
  EXPECT_FALSE(parse_decimal("1e3", 3, &f));
  EXPECT_FALSE(parse_decimal("12345678", 8, &f));  // more digits than are exact
}

namespace {

struct Capture {
  std::string text;
  static void emit(void* c, const char* s, size_t n) {
    static_cast<Capture*>(c)->text.append(s, n);
  }
};

std::string make_whole(const TempDir& dir, WeightType q = WeightType::kQ4) {
  return llmwire::test::make_image(dir, llmwire::test::small_config(), q);
}

}  // namespace

TEST(Runtime, MemoryPlanIsWhatBootTakes) {
  TempDir dir;
  const std::string img = make_whole(dir);
  HostStage hs;
  std::string err, hint;
  ASSERT_TRUE(hs.boot(img, nullptr, StageOptions{}, 1, 7, nullptr, &err, &hint)) << err;
  const MemoryNeeds need = Stage::memory_needs(hs.stage().image().info(), StageOptions{});
  EXPECT_EQ(hs.stage().memory_used().fast, need.fast);
  EXPECT_EQ(hs.stage().memory_used().big, need.big);
  EXPECT_TRUE(hs.stage().is_head());
  EXPECT_TRUE(hs.stage().selftest().ran);
  EXPECT_TRUE(hs.stage().selftest().identical);
}

TEST(Runtime, BootRefusesWithASentence) {
  TempDir dir;
  const std::string img = make_whole(dir);
  MappedFile f;
  std::string err;
  ASSERT_TRUE(f.open(img, &err));
  std::vector<uint8_t> bytes(f.data(), f.data() + f.size());
  Image probe;
  ASSERT_EQ(probe.open(bytes.data(), bytes.size()), Status::kOk);
  const MemoryNeeds need = Stage::memory_needs(probe.info(), StageOptions{});
  std::vector<uint8_t> fast(need.fast + 64), big(need.big + 64);
  HostClock clock;
  SerialExecutor exec;
  Platform p;
  p.image = bytes.data();
  p.image_len = bytes.size();
  p.clock = &clock;
  p.executor = &exec;
  p.fast = MemoryRegion{fast.data(), fast.size()};
  p.big = MemoryRegion{big.data(), big.size()};
  char msg[512];
  {
    Stage s;
    EXPECT_EQ(s.boot(p, StageOptions{}, msg, sizeof msg), Status::kOk) << msg;
  }
  {  // Too little internal RAM: the message names the region and a way out.
    Platform q = p;
    q.fast.size = need.fast / 2;
    Stage s;
    EXPECT_EQ(s.boot(q, StageOptions{}, msg, sizeof msg), Status::kArenaTooSmall);
    EXPECT_NE(std::string(msg).find("fast RAM"), std::string::npos) << msg;
    EXPECT_NE(std::string(msg).find("shorter context"), std::string::npos) << msg;
  }
  {  // Too little PSRAM.
    Platform q = p;
    q.big.size = need.big / 2;
    Stage s;
    EXPECT_EQ(s.boot(q, StageOptions{}, msg, sizeof msg), Status::kArenaTooSmall);
    EXPECT_NE(std::string(msg).find("PSRAM"), std::string::npos) << msg;
  }
  {  // A corrupted payload byte.
    std::vector<uint8_t> bad = bytes;
    bad[bad.size() - 5] ^= 0x40;
    Platform q = p;
    q.image = bad.data();
    Stage s;
    EXPECT_EQ(s.boot(q, StageOptions{}, msg, sizeof msg), Status::kPayloadCorrupt);
    EXPECT_NE(std::string(msg).find("model image:"), std::string::npos) << msg;
  }
  {  // No image at all (erased flash reads as 0xFF).
    std::vector<uint8_t> erased(4096, 0xFF);
    Platform q = p;
    q.image = erased.data();
    q.image_len = erased.size();
    Stage s;
    EXPECT_NE(s.boot(q, StageOptions{}, msg, sizeof msg), Status::kOk);
    EXPECT_NE(std::string(msg).find("model image:"), std::string::npos) << msg;
  }
}

TEST(Runtime, WorkerImageNeedsALink) {
  TempDir dir;
  const std::string img = make_whole(dir);
  MappedFile f;
  std::string err, hint;
  ASSERT_TRUE(f.open(img, &err));
  Image full;
  ASSERT_EQ(full.open(f.data(), f.size()), Status::kOk);
  const std::vector<std::string> paths = {dir.file("s0.img"), dir.file("s1.img")};
  std::vector<uint64_t> sizes;
  ASSERT_TRUE(split_image(full, {{2, 3}, {0, 2}}, 0, KvType::kF32, paths, &sizes, &err)) << err;
  HostStage hs;
  EXPECT_FALSE(hs.boot(paths[1], nullptr, StageOptions{}, 1, 9, nullptr, &err, &hint));
  EXPECT_NE(err.find("needs a link"), std::string::npos) << err;
}

TEST(Runtime, HeadConsoleTellsTheEngineStoryAndStaysUsable) {
  TempDir dir;
  const std::string img = make_whole(dir);
  // Reference: the engine's generation loop over the host model (another forward path).
  HostModel hm;
  std::string err, hint;
  ASSERT_TRUE(hm.load(img, RunOptions{}, 1, &err, &hint)) << err;
  std::vector<uint8_t> sm(Sampler::scratch_bytes(hm.model().config().vocab_size));
  Sampler sampler;
  SamplerSettings ss{0.8f, 0.9f, 42};
  ASSERT_EQ(sampler.init(hm.model().config().vocab_size, ss, sm.data(), sm.size()), Status::kOk);
  const std::string prompt = "Once upon a time";
  std::vector<int32_t> toks(prompt.size() + 3 + 20);
  Capture ref;
  GenerateIo io;
  io.ctx = &ref;
  io.emit = Capture::emit;
  GenerateStats st;
  size_t n = 0;
  ASSERT_EQ(generate(&hm, hm.tokenizer(), &sampler, prompt.data(), prompt.size(), 20, toks.data(),
                     toks.size(), io, &st, &n),
            Status::kOk);

  HostStage hs;
  ASSERT_TRUE(hs.boot(img, nullptr, StageOptions{}, 2, 7, nullptr, &err, &hint)) << err;
  HeadConsole hc;
  Capture out;
  hc.init(&hs.stage(), Capture::emit, &out);
  hc.handle_line("/temp 0.8", 9);
  hc.handle_line("/seed 42", 8);
  hc.handle_line("/len 20", 7);
  hc.handle_line("/len 0", 6);        // refused, settings unchanged
  hc.handle_line("/nonsense 1", 11);  // refused
  out.text.clear();
  hc.handle_line(prompt.data(), prompt.size());
  ASSERT_EQ(out.text.compare(0, ref.text.size(), ref.text), 0)
      << "console: " << out.text << "\nengine: " << ref.text;
  EXPECT_NE(out.text.find("[" + std::to_string(st.generated_tokens) + " tokens, "),
            std::string::npos)
      << out.text;
  EXPECT_NE(out.text.find(" tok/s, 1 boards]"), std::string::npos) << out.text;
  // The same line again: same seed, same story.
  const std::string first = out.text;
  out.text.clear();
  hc.handle_line(prompt.data(), prompt.size());
  EXPECT_EQ(out.text.substr(0, ref.text.size()), first.substr(0, ref.text.size()));
  out.text.clear();
  hc.handle_line("/help", 5);
  EXPECT_NE(out.text.find("/selftest"), std::string::npos);
  out.text.clear();
  hc.handle_line("/stats", 6);
  EXPECT_NE(out.text.find("memory: fast"), std::string::npos) << out.text;
  EXPECT_NE(out.text.find("settings: temp 0.8, topp 0.9, len 20, seed 42"), std::string::npos)
      << out.text;
  // A prompt longer than the board takes is refused with a sentence.
  out.text.clear();
  const std::string huge(5000, 'a');
  hc.handle_line(huge.data(), huge.size());
  EXPECT_NE(out.text.find("error: the opening is 5000 bytes"), std::string::npos) << out.text;
}

TEST(Runtime, SelftestDigestIsRepeatable) {
  TempDir dir;
  const std::string img = make_whole(dir);
  std::string err, hint, a, b;
  for (std::string* out : {&a, &b}) {
    HostStage hs;
    ASSERT_TRUE(hs.boot(img, nullptr, StageOptions{}, 1, 7, nullptr, &err, &hint)) << err;
    HeadConsole hc;
    Capture c;
    hc.init(&hs.stage(), Capture::emit, &c);
    hc.handle_line("/selftest", 9);
    const size_t at = c.text.find("selftest: digest ");
    ASSERT_NE(at, std::string::npos) << c.text;
    *out = c.text.substr(at, 25);
  }
  EXPECT_EQ(a, b);
}
