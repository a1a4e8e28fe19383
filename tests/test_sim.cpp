// The simulator end to end (one OS process per stage, throttled wires): a faulty ring tells
// the same story as a clean one and as the unsplit model, and the counters show every fault
// was really hit; a mis-assembled ring is refused with a message naming the problem.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>

#include "test_util.h"

using llmwire::test::TempDir;

namespace {

struct CmdResult {
  int rc = -1;
  std::string out;
};

CmdResult run(const std::string& args) {
  CmdResult r;
  FILE* p = popen((std::string(LLMWIRE_BIN) + " " + args + " 2>&1").c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  const int st = pclose(p);
  r.rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

// The story: everything before the table.
std::string story(const std::string& out) {
  const size_t cut = out.find("\n--- simulated ring");
  std::string s = out.substr(0, cut);
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

long total(const std::string& out, const std::string& key) {
  const size_t at = out.find(" " + key + "=");
  if (at == std::string::npos) return -1;
  return std::stol(out.substr(at + key.size() + 2));
}

struct Images {
  TempDir dir;
  std::string whole;
  std::vector<std::string> stages;
  // The real stories260K when $LLMWIRE_MODELS has it (a readable story), else a synthetic model.
  Images(int boards, uint64_t seed = 3, bool real = true) {
    std::string why;
    const std::string models = llmwire::test::models_dir({"stories260K.bin", "tok512.bin"}, &why);
    if (real && !models.empty()) {
      whole = dir.file("s260k.img");
      const CmdResult c =
          run("convert " + models + "/stories260K.bin " + models + "/tok512.bin -o " + whole);
      EXPECT_EQ(c.rc, 0) << c.out;
    } else {
      const auto c = llmwire::test::small_config(64, 120, 4, 8, 4, 320, 128);
      whole = llmwire::test::make_image(dir, c, llmwire::WeightType::kQ4, 32, seed);
    }
    const CmdResult r =
        run("split " + whole + " --boards " + std::to_string(boards) + " -o " + dir.path);
    EXPECT_EQ(r.rc, 0) << r.out;
    for (int k = 0; k < boards; k++) {
      stages.push_back(dir.path + "/" +
                       whole.substr(whole.find_last_of('/') + 1,
                                    whole.size() - 4 - whole.find_last_of('/') - 1) +
                       ".stage" + std::to_string(k) + ".img");
    }
  }
  std::string list() const {
    std::string s;
    for (const auto& p : stages) s += " " + p;
    return s;
  }
};

}  // namespace

TEST(Sim, FaultyRingTellsTheSameStoryAndCountsEveryFault) {
  Images im(3);
  const std::string common = " -p 'The cat' -n 40 --temp 0.9 --topp 0.9 --seed 5 --timeout-ms 200";
  const CmdResult clean = run("sim --images" + im.list() + common);
  ASSERT_EQ(clean.rc, 0) << clean.out;
  const CmdResult mono = run("generate " + im.whole + common.substr(0, common.find(" --timeout")));
  ASSERT_EQ(mono.rc, 0) << mono.out;
  const std::string mono_story = mono.out.substr(0, mono.out.find("---\nprompt:"));
  EXPECT_EQ(story(clean.out), story(mono_story)) << clean.out;
  EXPECT_EQ(total(clean.out, "retransmissions"), 0) << clean.out;

  const CmdResult faulty = run("sim --images" + im.list() + common +
                               " --ber 1e-4 --drop 0.01 --dup 0.01 --stall-ms 40 --reboot 1@20");
  ASSERT_EQ(faulty.rc, 0) << faulty.out;
  EXPECT_EQ(story(faulty.out), story(clean.out)) << faulty.out;
  EXPECT_GT(total(faulty.out, "crc_rejects"), 0) << faulty.out;
  EXPECT_GT(total(faulty.out, "retransmissions"), 0) << faulty.out;
  EXPECT_EQ(total(faulty.out, "replays"), 1) << faulty.out;
  EXPECT_EQ(total(faulty.out, "reboots"), 1) << faulty.out;
  std::printf("%s\n", faulty.out.substr(faulty.out.find("--- simulated")).c_str());
}

// Sampling with the classifier split across the ring (the split sampler: no logits
// gathered) tells the unsplit story, also over faulty wires.
TEST(Sim, SplitClassifierSamplingTellsTheSameStory) {
  Images im(3);
  const CmdResult sp = run("split " + im.whole + " --boards 3 --classifier-slices even -o " +
                           im.dir.path + " --force");
  ASSERT_EQ(sp.rc, 0) << sp.out;
  for (const char* opts : {" --temp 0.8 --topp 0.9 --seed 3", " --temp 0.8 --topp 1 --seed 4"}) {
    const std::string common = std::string(" -p 'The cat' -n 24") + opts;
    const CmdResult mono = run("generate " + im.whole + common);
    ASSERT_EQ(mono.rc, 0) << mono.out;
    const std::string mono_story = mono.out.substr(0, mono.out.find("---\nprompt:"));
    const CmdResult clean = run("sim --images" + im.list() + common);
    ASSERT_EQ(clean.rc, 0) << clean.out;
    EXPECT_EQ(story(clean.out), story(mono_story)) << clean.out;
    EXPECT_NE(clean.out.find("0 logits gathered"), std::string::npos) << clean.out;
    EXPECT_EQ(clean.out.find(" 0 sampling rounds"), std::string::npos) << clean.out;
    const CmdResult faulty =
        run("sim --images" + im.list() + common +
            " --timeout-ms 200 --ber 1e-4 --drop 0.02 --dup 0.02 --reboot 1@10");
    ASSERT_EQ(faulty.rc, 0) << faulty.out;
    EXPECT_EQ(story(faulty.out), story(mono_story)) << faulty.out;
  }
}

TEST(Sim, RefusesAMisassembledRing) {
  Images a(3, 3, false), b(3, 4, false);
  // Wrong order.
  CmdResult r =
      run("sim --quiet -n 4 --images " + a.stages[0] + " " + a.stages[2] + " " + a.stages[1]);
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.out.find("wrong order"), std::string::npos) << r.out;
  // A stage of another model.
  r = run("sim --quiet -n 4 --images " + a.stages[0] + " " + a.stages[1] + " " + b.stages[2]);
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.out.find("different model"), std::string::npos) << r.out;
  // A worker image where the head should be.
  r = run("sim --quiet -n 4 --images " + a.stages[1] + " " + a.stages[0] + " " + a.stages[2]);
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.out.find("stage 0"), std::string::npos) << r.out;
}

// The hop layer repairs bit errors and lost frames at once: the story is the unsplit one, the
// head never times out, and the faulty ring is not much slower than the clean one.
TEST(Sim, HopRecoveryMakesFaultsCheap) {
  Images im(2);
  const std::string common = " -p 'Once upon a time' -n 60 --temp 0.9 --seed 7 --quiet";
  const CmdResult mono = run("generate " + im.whole + common.substr(0, common.find(" --quiet")));
  ASSERT_EQ(mono.rc, 0) << mono.out;
  const auto t0 = std::chrono::steady_clock::now();
  const CmdResult clean = run("sim --images" + im.list() + common);
  const auto t1 = std::chrono::steady_clock::now();
  const CmdResult faulty = run("sim --images" + im.list() + common + " --ber 1e-4 --drop 0.05");
  const auto t2 = std::chrono::steady_clock::now();
  ASSERT_EQ(clean.rc, 0) << clean.out;
  ASSERT_EQ(faulty.rc, 0) << faulty.out;
  const std::string loud =
      run("sim --images" + im.list() + common.substr(0, common.find(" --quiet")) + " --ber 1e-4")
          .out;
  EXPECT_EQ(story(loud), story(mono.out.substr(0, mono.out.find("---\nprompt:")))) << loud;
  EXPECT_GT(total(faulty.out, "hop_resent"), 0) << faulty.out;
  EXPECT_GT(total(faulty.out, "crc_rejects"), 0) << faulty.out;
  EXPECT_EQ(total(faulty.out, "timeouts"), 0) << faulty.out;
  const double c = std::chrono::duration<double>(t1 - t0).count();
  const double f = std::chrono::duration<double>(t2 - t1).count();
  std::printf("clean %.2f s, BER 1e-4 + 5%% drop %.2f s: %.2fx\n", c, f, f / c);
  EXPECT_LT(f, 3 * c + 1.0);  // loose: the machine may be busy; the target (1.5x) is in bench
}

// Six boards under every fault at once and two reboots still tell the unsplit story.
TEST(Sim, SixBoardsUnderEveryFaultAndTwoReboots) {
  Images im(6);
  const std::string common = " -p 'Once upon a time' -n 30 --temp 0.9 --seed 7";
  const CmdResult mono = run("generate " + im.whole + common);
  ASSERT_EQ(mono.rc, 0) << mono.out;
  const CmdResult r = run("sim --images" + im.list() + common +
                          " --ber 3e-4 --drop 0.1 --dup 0.2 --reboot 2@5 --reboot 4@15");
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_EQ(story(r.out), story(mono.out.substr(0, mono.out.find("---\nprompt:")))) << r.out;
  EXPECT_EQ(total(r.out, "reboots"), 2) << r.out;
  EXPECT_EQ(total(r.out, "replays"), 2) << r.out;
  EXPECT_GT(total(r.out, "hop_resent"), 0) << r.out;
}

// At BER 1e-3 most frames are damaged on every attempt; discovery and generation still finish.
TEST(Sim, BitErrorRate1e3Completes) {
  Images im(2);
  const std::string common = " -p 'Once upon a time' -n 8 --temp 0.9 --seed 7";
  const CmdResult mono = run("generate " + im.whole + common);
  ASSERT_EQ(mono.rc, 0) << mono.out;
  const CmdResult r = run("sim --images" + im.list() + common + " --ber 1e-3");
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_EQ(story(r.out), story(mono.out.substr(0, mono.out.find("---\nprompt:")))) << r.out;
  EXPECT_GT(total(r.out, "crc_rejects"), 20) << r.out;
}

TEST(Sim, RebootFlagIsCheckedAndMayRepeat) {
  Images im(3, 3, false);
  for (const char* bad : {"1@", "@3", "x", "1@2@3", "1@-2", "0@3", "3@1", "1@99"}) {
    const CmdResult r =
        run("sim --quiet -n 10 --images" + im.list() + " --reboot " + std::string(bad));
    EXPECT_NE(r.rc, 0) << bad << ": " << r.out;
    EXPECT_NE(r.out.find("reboot"), std::string::npos) << bad << ": " << r.out;
  }
  Images real(3);  // a story long enough to reach every reboot
  const CmdResult r = run("sim --quiet -p 'Once upon a time' -n 12 --seed 7 --images" +
                          real.list() + " --reboot 1@2 --reboot 2@4 --reboot 1@8");
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_EQ(total(r.out, "reboots"), 3) << r.out;
  EXPECT_EQ(total(r.out, "replays"), 3) << r.out;
}
