#include "engine/status.h"

namespace llmwire {

const char* status_message(Status s) {
  switch (s) {
    case Status::kOk:
      return "ok";
    case Status::kImageTooSmall:
      return "file is smaller than an llmwire image header";
    case Status::kBadMagic:
      return "not an llmwire image (bad magic)";
    case Status::kBadVersion:
      return "unsupported image format version";
    case Status::kBadHeaderSize:
      return "image header size is not the expected 256 bytes";
    case Status::kHeaderCorrupt:
      return "image header checksum mismatch (header corrupted)";
    case Status::kTruncated:
      return "image is truncated (file shorter than its header says)";
    case Status::kSizeMismatch:
      return "image size does not match its header (extra bytes)";
    case Status::kPayloadCorrupt:
      return "image payload checksum mismatch (data corrupted)";
    case Status::kBadConfig:
      return "image model configuration is invalid";
    case Status::kBadTensorTable:
      return "image tensor table is invalid";
    case Status::kMissingTensor:
      return "image is missing a tensor its header promises";
    case Status::kBadTensorShape:
      return "image tensor has the wrong shape or type";
    case Status::kBadTokenizer:
      return "image tokenizer data is invalid";
    case Status::kArenaTooSmall:
      return "memory arena is too small for this configuration";
    case Status::kNotInImage:
      return "requested layer or part is not in this image";
    case Status::kBadArgument:
      return "invalid argument";
    case Status::kSequenceFull:
      return "sequence length reached";
    case Status::kPromptTooLong:
      return "prompt is longer than the sequence length";
    case Status::kLinkError:
      return "the ring of boards stopped answering";
    case Status::kRingMismatch:
      return "the boards in the ring do not hold one model's stages in order";
    case Status::kPlacementCorrupt:
      return "a weight tensor copied from flash into RAM at boot does not match its source";
  }
  return "unknown error";
}

const char* status_hint(Status s) {
  switch (s) {
    case Status::kImageTooSmall:
    case Status::kBadMagic:
      return "pass an image made by 'llmwire convert' (not a raw checkpoint or tokenizer)";
    case Status::kBadVersion:
      return "re-convert the checkpoint with this version of llmwire";
    case Status::kBadHeaderSize:
    case Status::kHeaderCorrupt:
    case Status::kPayloadCorrupt:
    case Status::kBadTensorTable:
    case Status::kMissingTensor:
    case Status::kBadTensorShape:
    case Status::kBadTokenizer:
      return "the file is damaged: re-convert it, or re-copy/re-flash it";
    case Status::kTruncated:
    case Status::kSizeMismatch:
      return "the copy is incomplete or has extra bytes: re-copy or re-flash the whole image";
    case Status::kBadConfig:
      return "re-convert from the original checkpoint";
    case Status::kArenaTooSmall:
      return "use a shorter --seq, fp16 or int8 KV cache (--kv f16, --kv i8), or more boards";
    case Status::kNotInImage:
      return "this stage image does not hold that part of the model";
    case Status::kSequenceFull:
    case Status::kPromptTooLong:
      return "use a shorter prompt or fewer tokens, or an image with a longer --seq";
    case Status::kLinkError:
      return "check power, TX->RX wiring, GND and that every board uses the same baud rate";
    case Status::kRingMismatch:
      return "flash each board with its stage image from one 'llmwire split' and wire them in "
             "stage order";
    case Status::kPlacementCorrupt:
      return "the RAM (PSRAM) may be faulty: check the module, or boot without weight placement";
    default:
      return "";
  }
}

}  // namespace llmwire
