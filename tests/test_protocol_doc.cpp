// docs/PROTOCOL.md's worked examples are real frames: every "A5 5A ..." line parses, its CRC
// holds and its payload decodes as the message type it claims.
#include <gtest/gtest.h>

#include <set>
#include <sstream>

#include "link/frame.h"
#include "link/messages.h"
#include "test_util.h"

using namespace llmwire;

TEST(ProtocolDoc, WorkedExamplesAreValidFrames) {
  const std::string doc =
      llmwire::test::read_file(std::string(LLMWIRE_SOURCE_DIR) + "/docs/PROTOCOL.md");
  ASSERT_FALSE(doc.empty());
  std::istringstream in(doc);
  std::string line;
  int frames = 0;
  std::set<uint8_t> types;
  while (std::getline(in, line)) {
    const size_t at = line.find("A5 5A ");
    if (at == std::string::npos || line.find_first_not_of(' ') != at) continue;
    std::istringstream hex(line.substr(at));
    std::vector<uint8_t> bytes;
    unsigned v;
    while (hex >> std::hex >> v) bytes.push_back((uint8_t)v);
    if (bytes.size() < kFrameOverhead) continue;  // a layout sketch, not a frame
    Frame f;
    ASSERT_TRUE(parse_frame(bytes.data(), bytes.size(), &f)) << line;
    EXPECT_EQ(validate_message(f.type, f.payload, f.len), MsgStatus::kOk) << line;
    types.insert(f.type);
    frames++;
  }
  EXPECT_GE(frames, 14);
  // The hop layer's messages have worked examples too.
  for (MsgType t : {MsgType::kNeedReplay, MsgType::kReset, MsgType::kStatsRequest, MsgType::kHopNak,
                    MsgType::kHopMark, MsgType::kHopPatch, MsgType::kClassify,
                    MsgType::kClassLogits, MsgType::kClassSlice, MsgType::kActivationBatch,
                    MsgType::kSampleChain, MsgType::kSampleTop, MsgType::kSampleCands}) {
    EXPECT_TRUE(types.count((uint8_t)t)) << msg_type_name((uint8_t)t) << " has no worked example";
  }
}

// The doc stands alone: no file outside the repository is cited, and it does not defer to the
// code.
TEST(ProtocolDoc, IsSelfContained) {
  for (const char* name : {"PROTOCOL.md", "GENERATION.md", "FORMAT.md", "NUMERICS.md",
                           "ARCHITECTURE.md", "PLANNER.md"}) {
    const std::string doc =
        llmwire::test::read_file(std::string(LLMWIRE_SOURCE_DIR) + "/docs/" + name);
    ASSERT_FALSE(doc.empty()) << name;
    EXPECT_EQ(doc.find("../"), std::string::npos) << name << " cites a file outside the repo";
    EXPECT_EQ(doc.find("ource of truth"), std::string::npos) << name;
  }
}
