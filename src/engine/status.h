// Error codes of the portable engine. No exceptions: every fallible call returns a Status,
// and status_message()/status_hint() give the words the CLI or console prints.
#pragma once

namespace llmwire {

enum class Status : int {
  kOk = 0,
  // Image reader
  kImageTooSmall,
  kBadMagic,
  kBadVersion,
  kBadHeaderSize,
  kHeaderCorrupt,
  kTruncated,
  kSizeMismatch,
  kPayloadCorrupt,
  kBadConfig,
  kBadTensorTable,
  kMissingTensor,
  kBadTensorShape,
  kBadTokenizer,
  // Runtime
  kArenaTooSmall,
  kNotInImage,
  kBadArgument,
  kSequenceFull,
  kPromptTooLong,
  // Pipeline
  kLinkError,
  kRingMismatch,
  // Weight placement
  kPlacementCorrupt,
};

const char* status_message(Status s);
// What the user can do about it.
const char* status_hint(Status s);

}  // namespace llmwire
