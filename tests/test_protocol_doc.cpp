// docs/PROTOCOL.md's worked examples are real frames: every "A5 5A ..." line parses, its CRC
// holds and its payload decodes as the message type it claims.
#include <gtest/gtest.h>

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
    frames++;
  }
  EXPECT_GE(frames, 3);
}
