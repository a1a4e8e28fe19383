// Link message payloads (docs/PROTOCOL.md "Messages"): the only code that knows their byte
// layouts. All little-endian; every decode checks the length exactly and trusts nothing.
// Encoders write into a caller buffer (typically FrameWriter::payload()) and return the
// payload size, or 0 if the arguments are invalid or the buffer is too small.
// Portable: no heap, no exceptions, no OS calls, alignment-safe.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "engine/sampler.h"  // ProbIndex (SAMPLE_CANDS)
#include "link/frame.h"

namespace llmwire {

enum class MsgType : uint8_t {
  kHello = 1,
  kActivation = 2,
  kNeedReplay = 3,
  kReset = 4,
  kStatsRequest = 5,
  kStats = 6,
  kError = 7,
  kHopNak = 8,   // hop layer (link/hop.h): ask the previous board to resend
  kHopMark = 9,  // hop layer: "my next sequence number is N"
  // hop layer: bytes of a numbered frame, to mend the damaged copy the receiver holds.
  kHopPatch = 10,
  kActivationBatch = 11,  // consecutive positions of a prompt chunk: one pass over the weights
  // Classifier split (docs/PROTOCOL.md "Classifier split"): 16 and up.
  kClassify = 16,     // head -> ring: the final-normed activation of a position
  kClassLogits = 17,  // a worker's raw logits for part of its rows
  kClassSlice = 18,   // a worker's rows, their max and arg max: its last reply to a CLASSIFY
  // Sampled classifier split (docs/PROTOCOL.md "Sampled classifier split", message set 3).
  kSampleChain = 19,  // head -> ring -> head: a softmax-sum or cdf chain continued in row order
  kSampleTop = 20,    // head -> ring: ask for a slice's best top-p candidates
  kSampleCands = 21,  // a worker -> ring -> head: those candidates, best first
};
const char* msg_type_name(uint8_t type);  // "ACTIVATION", ... or "UNKNOWN"

enum class MsgStatus : uint8_t {
  kOk = 0,
  kTooShort,     // fewer bytes than the fixed part
  kBadLength,    // length does not match what the fixed part says (or trailing bytes)
  kBadCount,     // entry count out of range (HELLO/STATS)
  kBadDim,       // ACTIVATION: no floats, or not a whole number of floats
  kTextTooLong,  // ERROR: text_len > kMaxErrorText
  kBadValue,     // a field holds a value the protocol does not define
};
const char* msg_status_name(MsgStatus s);

constexpr size_t kMaxStages = 64;

// The message set a stage speaks, announced in HELLO (StageInfo::protocol_version): version 2
// added ACTIVATION_BATCH, version 3 SAMPLE_CHAIN / SAMPLE_TOP / SAMPLE_CANDS. Frames keep
// version 1's layout and version byte (kProtocolVersion), so an older board still answers
// HELLO and the head refuses it by name.
constexpr uint16_t kMessageVersion = 3;

// ---- HELLO (1): u8 count, u8 reserved[3], count x StageInfo ----
struct StageInfo {
  uint16_t protocol_version = 0;
  uint16_t firmware_version = 0;
  uint32_t boot_id = 0;  // random per boot
  uint64_t model_id = 0;
  uint32_t stage_index = 0;
  uint32_t stage_count = 0;
  uint32_t layer_begin = 0;
  uint32_t layer_end = 0;
  uint32_t dim = 0;
  uint32_t n_layers = 0;
  uint32_t seq_len = 0;  // positions this stage can hold
  uint32_t kv_type = 0;  // KvType: 0 f32, 1 f16, 2 i8
};
constexpr size_t kStageInfoSize = 48;
constexpr size_t kHelloHeaderSize = 4;
constexpr size_t kHelloMaxSize = kHelloHeaderSize + kMaxStages * kStageInfoSize;  // 3076

void encode_stage_info(const StageInfo& s, uint8_t out[kStageInfoSize]);
void decode_stage_info(const uint8_t in[kStageInfoSize], StageInfo* s);

// count in 1..kMaxStages.
size_t encode_hello(const StageInfo* stages, size_t count, uint8_t* out, size_t cap);
// Zero-copy view of a decoded HELLO (points into the payload).
struct HelloView {
  uint8_t count = 0;
  const uint8_t* entries = nullptr;
  StageInfo entry(size_t i) const;  // i < count
};
MsgStatus decode_hello(const uint8_t* p, size_t len, HelloView* out);
// Appends `mine` to a HELLO payload and returns the new length (0 if invalid or full).
// in and out may be the same buffer (forward in place).
size_t hello_append(const uint8_t* in, size_t in_len, const StageInfo& mine, uint8_t* out,
                    size_t cap);

// ---- ACTIVATION (2): u32 session_id, u32 pos, u16 epoch, u8 dest_stage, u8 flags, dim x f32 ----
struct ActivationHeader {
  uint32_t session_id = 0;
  uint32_t pos = 0;
  uint16_t epoch = 0;
  uint8_t dest_stage = 0;
  uint8_t flags = 0;
};
constexpr size_t kActivationHeaderSize = 12;
constexpr size_t kMaxActivationDim = (kMaxPayload - kActivationHeaderSize) / 4;  // 2045

size_t activation_size(uint32_t dim);  // payload bytes, 0 if dim is 0 or too big
// dim in 1..kMaxActivationDim.
size_t encode_activation(const ActivationHeader& h, const float* x, uint32_t dim, uint8_t* out,
                         size_t cap);
// Zero-copy: `data` points at the (possibly unaligned) little-endian floats in the payload.
struct ActivationView {
  ActivationHeader h;
  uint32_t dim = 0;
  const uint8_t* data = nullptr;
  float at(uint32_t i) const;      // i < dim
  void copy_to(float* out) const;  // out has dim floats
};
MsgStatus decode_activation(const uint8_t* p, size_t len, ActivationView* out);
// Copies `dim` little-endian floats from unaligned bytes into `out`.
void load_f32_array(const uint8_t* src, uint32_t dim, float* out);
// Writes `n` floats as little-endian bytes at (possibly unaligned) `dst`.
void store_f32_array(const float* v, uint32_t n, uint8_t* dst);

// ---- ACTIVATION_BATCH (11): u32 session_id, u32 pos, u16 epoch, u8 dest_stage, u8 flags,
// u16 count, u16 dim, count x dim f32 (position pos + i's vector is the i-th) ----
// A prompt chunk: the vectors of positions pos .. pos+count-1, run through a stage's layers in
// one batched pass (bit-identical to running them one by one).
constexpr size_t kActivationBatchHeaderSize = 16;
// Positions one frame can carry at width `dim` (0 when not even one fits).
uint32_t activation_batch_max_count(uint32_t dim);
// Payload bytes, 0 if count or dim is 0 or the payload would exceed kMaxPayload.
size_t activation_batch_size(uint32_t count, uint32_t dim);
// Writes the header only (the vectors go at out + kActivationBatchHeaderSize + i*dim*4, e.g.
// with store_f32_array, so a chunk is built in the frame buffer without a copy) and returns
// the whole payload's size, or 0 (invalid arguments, or it does not fit cap).
size_t encode_activation_batch_header(const ActivationHeader& h, uint32_t count, uint32_t dim,
                                      uint8_t* out, size_t cap);
// Header and count*dim floats.
size_t encode_activation_batch(const ActivationHeader& h, const float* x, uint32_t count,
                               uint32_t dim, uint8_t* out, size_t cap);
struct ActivationBatchView {
  ActivationHeader h;  // h.pos: the first position
  uint32_t count = 0, dim = 0;
  const uint8_t* data = nullptr;  // count*dim little-endian floats, possibly unaligned
  // Loads vectors first .. first+n-1 (first + n <= count) into out[n][dim].
  void copy_to(uint32_t first, uint32_t n, float* out) const;
};
// kTooShort below 16 bytes; kBadCount for count 0; kBadDim for dim 0; kBadLength unless len is
// exactly 16 + 4*count*dim (at most kMaxPayload); kBadValue when pos + count overflows.
MsgStatus decode_activation_batch(const uint8_t* p, size_t len, ActivationBatchView* out);

// ---- NEED_REPLAY (3): u32 session_id, u32 pos, u32 have, u16 epoch, u8 stage_index, u8 reason
enum class ReplayReason : uint8_t { kGap = 0, kUnknownSession = 1 };
struct NeedReplay {
  uint32_t session_id = 0;
  uint32_t pos = 0;   // the position the stage could not run
  uint32_t have = 0;  // how many leading positions the stage holds
  uint16_t epoch = 0;
  uint8_t stage_index = 0;
  uint8_t reason = 0;  // ReplayReason
};
constexpr size_t kNeedReplaySize = 16;
size_t encode_need_replay(const NeedReplay& m, uint8_t* out, size_t cap);
MsgStatus decode_need_replay(const uint8_t* p, size_t len, NeedReplay* out);  // reason 0..1

// ---- RESET (4): u32 session_id ----
constexpr size_t kResetSize = 4;
size_t encode_reset(uint32_t session_id, uint8_t* out, size_t cap);
MsgStatus decode_reset(const uint8_t* p, size_t len, uint32_t* session_id);

// ---- STATS_REQUEST (5): u32 request_id ----
constexpr size_t kStatsRequestSize = 4;
size_t encode_stats_request(uint32_t request_id, uint8_t* out, size_t cap);
MsgStatus decode_stats_request(const uint8_t* p, size_t len, uint32_t* request_id);

// ---- STATS (6): u32 request_id, u8 count, u8 reserved[3], count x StageStats ----
struct StageStats {
  uint32_t stage_index = 0;
  uint32_t boot_id = 0;
  uint32_t frames_rx = 0;
  uint32_t frames_tx = 0;
  uint32_t crc_errors = 0;
  uint32_t resyncs = 0;
  uint32_t oversize = 0;
  uint32_t partial_timeouts = 0;
  uint32_t positions_computed = 0;
  uint32_t need_replay_sent = 0;
  uint64_t compute_us = 0;    // time spent computing layers
  uint64_t link_wait_us = 0;  // time spent waiting on the link
  uint32_t version_mismatch = 0;
  uint32_t frames_resent = 0;  // frames this stage resent on its TX hop after a HOP_NAK
};
constexpr size_t kStageStatsSize = 64;
constexpr size_t kStatsHeaderSize = 8;
constexpr size_t kStatsMaxSize = kStatsHeaderSize + kMaxStages * kStageStatsSize;  // 4104

void encode_stage_stats(const StageStats& s, uint8_t out[kStageStatsSize]);
void decode_stage_stats(const uint8_t in[kStageStatsSize], StageStats* s);
// count in 0..kMaxStages (a head may start the round with no entry).
size_t encode_stats(uint32_t request_id, const StageStats* stages, size_t count, uint8_t* out,
                    size_t cap);
struct StatsView {
  uint32_t request_id = 0;
  uint8_t count = 0;
  const uint8_t* entries = nullptr;
  StageStats entry(size_t i) const;  // i < count
};
MsgStatus decode_stats(const uint8_t* p, size_t len, StatsView* out);
// Appends `mine`; in and out may be the same buffer. Returns the new length or 0.
size_t stats_append(const uint8_t* in, size_t in_len, const StageStats& mine, uint8_t* out,
                    size_t cap);

// ---- ERROR (7): u8 stage_index, u8 code, u16 text_len, text (not NUL-terminated) ----
enum class ErrorCode : uint8_t {
  kWrongModel = 1,
  kWrongStageOrder = 2,
  kProtocolMismatch = 3,
  kDimsMismatch = 4,
  kSequenceFull = 5,
  kInternal = 6,
};
const char* error_code_name(uint8_t code);  // "wrong model", ... or "unknown error"
constexpr size_t kMaxErrorText = 200;
constexpr size_t kErrorHeaderSize = 4;
struct ErrorMsg {
  uint8_t stage_index = 0;
  uint8_t code = 0;  // ErrorCode; unknown codes decode fine (report them as such)
  uint16_t text_len = 0;
  const char* text = nullptr;  // points into the payload; not NUL-terminated
};
// text_len > kMaxErrorText is truncated to kMaxErrorText (text may be null if text_len is 0).
size_t encode_error(uint8_t stage_index, uint8_t code, const char* text, size_t text_len,
                    uint8_t* out, size_t cap);
MsgStatus decode_error(const uint8_t* p, size_t len, ErrorMsg* out);

// ---- HOP_NAK (8): u16 from_seq, u8 stage, u8 ttl [, u16 frame_len, u8 block_shift,
//      u8 checks[blocks]] ----
// Sent by the receiving end of a hop; travels forward round the ring to `stage`, the sender
// of that hop, which resends its frames with sequence numbers from_seq, from_seq+1, ...
// With the optional digest the receiver says it holds a damaged copy of frame from_seq:
// frame_len bytes in blocks of 2^block_shift bytes, checks[i] = low byte of the CRC-32C of
// block i; the sender then sends only the blocks whose check differs (HOP_PATCH).
constexpr size_t kHopMaxBlocks = 32;
constexpr uint8_t kHopMinBlockShift = 4, kHopMaxBlockShift = 12;
struct HopNak {
  uint16_t from_seq = 0;   // the first sequence number the receiver is missing
  uint8_t stage = 0;       // the stage whose TX hop lost frames
  uint8_t ttl = 0;         // hops the NAK may still travel (1..kMaxStages-1)
  uint16_t frame_len = 0;  // digest: bytes of the damaged copy (0: no digest)
  uint8_t block_shift = 0;
  uint8_t checks[kHopMaxBlocks] = {};
};
constexpr size_t kHopNakSize = 4;                                   // without a digest
constexpr size_t kHopNakMaxSize = kHopNakSize + 3 + kHopMaxBlocks;  // with the largest one
// Blocks of 2^shift bytes that cover frame_len bytes.
constexpr size_t hop_blocks(size_t frame_len, uint8_t shift) {
  return (frame_len + ((size_t)1 << shift) - 1) >> shift;
}
// The digest check of one block.
uint8_t hop_block_check(const uint8_t* block, size_t len);
size_t encode_hop_nak(const HopNak& m, uint8_t* out, size_t cap);
// ttl 0, a digest with frame_len outside [kFrameOverhead, kMaxFrameSize], block_shift outside
// [kHopMinBlockShift, kHopMaxBlockShift] or more than kHopMaxBlocks blocks: kBadValue.
MsgStatus decode_hop_nak(const uint8_t* p, size_t len, HopNak* out);

// ---- HOP_PATCH (10): u16 seq, u16 offset, bytes[len - 4] ----
// The answer to a NAK with a digest: bytes offset .. offset+n-1 of numbered frame `seq`, as it
// was sent. The receiver writes them over its damaged copy and takes the copy only if the
// whole frame's CRC-32C then holds.
struct HopPatchView {
  uint16_t seq = 0;
  uint16_t offset = 0;
  const uint8_t* bytes = nullptr;
  uint16_t n = 0;
};
constexpr size_t kHopPatchHeaderSize = 4;
// Writes the payload (bytes may overlap out); returns its size or 0 (n is 0, offset + n >
// kMaxFrameSize, or it does not fit cap).
size_t encode_hop_patch(uint16_t seq, uint16_t offset, const uint8_t* bytes, size_t n, uint8_t* out,
                        size_t cap);
// At least one byte; offset + n <= kMaxFrameSize.
MsgStatus decode_hop_patch(const uint8_t* p, size_t len, HopPatchView* out);

// ---- HOP_MARK (9): u16 next_seq, u8 kept, u8 flags ----
// Sent by the sending end of a hop after every numbered frame and as the answer to a NAK.
struct HopMark {
  uint16_t next_seq = 0;  // the sequence number of the sender's next new frame
  uint8_t kept = 0;       // frames next_seq-kept .. next_seq-1 can still be resent (0..255)
  uint8_t flags = 0;      // kHopMarkAnswer; other bits 0
};
constexpr uint8_t kHopMarkAnswer = 1;  // this mark closes the answer to a HOP_NAK
constexpr size_t kHopMarkSize = 4;
size_t encode_hop_mark(const HopMark& m, uint8_t* out, size_t cap);
MsgStatus decode_hop_mark(const uint8_t* p, size_t len, HopMark* out);  // unknown flags: kBadValue

// ---- CLASSIFY (16): u32 session_id, u32 pos, u8 mode, u8 reserved[3], dim x f32 ----
// The head's final-normed activation for `pos`; every worker passes it on, then answers.
enum class ClassifyMode : uint8_t {
  kMax = 0,     // answer with CLASS_SLICE only (greedy decoding)
  kLogits = 1,  // CLASS_LOGITS for every row of the slice, then CLASS_SLICE
};
struct ClassifyHeader {
  uint32_t session_id = 0;
  uint32_t pos = 0;
  uint8_t mode = 0;  // ClassifyMode
};
constexpr size_t kClassifyHeaderSize = 12;
// dim in 1..kMaxActivationDim; the payload is as long as an ACTIVATION's.
size_t encode_classify(const ClassifyHeader& h, const float* xn, uint32_t dim, uint8_t* out,
                       size_t cap);
struct ClassifyView {
  ClassifyHeader h;
  uint32_t dim = 0;
  const uint8_t* data = nullptr;  // dim little-endian floats (load_f32_array)
};
MsgStatus decode_classify(const uint8_t* p, size_t len, ClassifyView* out);  // mode 0..1

// ---- CLASS_LOGITS (17): u32 session_id, u32 pos, u32 first_row, u8 stage, u8 reserved[3],
// count x f32 (count >= 1, from the length) ----
struct ClassLogitsHeader {
  uint32_t session_id = 0;
  uint32_t pos = 0;
  uint32_t first_row = 0;  // vocabulary index of the first float
  uint8_t stage = 0;       // the sender
};
constexpr size_t kClassLogitsHeaderSize = 16;
// At most this many floats per frame: a CLASS_LOGITS frame is never longer than an ACTIVATION
// of the same model, so the hop's resend buffer (sized by dim) holds as many of them.
uint32_t class_logits_max_count(uint32_t dim);
size_t encode_class_logits(const ClassLogitsHeader& h, const float* v, uint32_t count, uint8_t* out,
                           size_t cap);
struct ClassLogitsView {
  ClassLogitsHeader h;
  uint32_t count = 0;
  const uint8_t* data = nullptr;
};
MsgStatus decode_class_logits(const uint8_t* p, size_t len, ClassLogitsView* out);

// ---- CLASS_SLICE (18): u32 session_id, u32 pos, u32 row_begin, u32 row_end, u8 stage,
// u8 flags, u16 reserved, f32 max, u32 argmax ----
constexpr uint8_t kSliceHasMax = 1;    // some row is not NaN: max and argmax are set
constexpr uint8_t kSliceFirstNaN = 2;  // the logit of row_begin is NaN
struct ClassSlice {
  uint32_t session_id = 0;
  uint32_t pos = 0;
  uint32_t row_begin = 0;  // the rows this stage holds: [row_begin, row_end)
  uint32_t row_end = 0;
  uint8_t stage = 0;
  uint8_t flags = 0;
  float max = 0.0f;     // the largest non-NaN logit of the rows (kSliceHasMax), else 0
  uint32_t argmax = 0;  // its lowest row index (kSliceHasMax), else 0
};
constexpr size_t kClassSliceSize = 28;
size_t encode_class_slice(const ClassSlice& m, uint8_t* out, size_t cap);
// kBadValue: row_begin > row_end, unknown flags, argmax outside the rows, or max/argmax
// nonzero without kSliceHasMax.
MsgStatus decode_class_slice(const uint8_t* p, size_t len, ClassSlice* out);

// ---- SAMPLE_CHAIN (19): u32 session_id, u32 pos, u8 mode, u8 flags, u16 reserved,
// f32 temperature, f32 max, f32 sum, f32 cdf, f32 coin, u32 row ----
enum class ChainMode : uint8_t {
  kSum = 0,  // continue the softmax denominator: sum is the running sum
  kCdf = 1,  // continue the multinomial cdf: sum is the final denominator, cdf the running sum
  // Start the exponentials now (every board at once, before the SUM chain reaches it); passed
  // on by every worker but the last, nothing comes back. sum, cdf, coin and row are 0.
  kPrepare = 2,
};
constexpr uint8_t kChainFound = 1;  // kCdf: the coin fell in row `row`; later boards pass it on
struct SampleChain {
  uint32_t session_id = 0;
  uint32_t pos = 0;
  uint8_t mode = 0;  // ChainMode
  uint8_t flags = 0;
  float temperature = 1.0f;  // > 0 and finite
  float max = 0.0f;          // the softmax max of the temperature-scaled logits
  float sum = 0.0f;
  float cdf = 0.0f;   // kCdf only, else 0
  float coin = 0.0f;  // kCdf only (in [0, 1)), else 0
  uint32_t row = 0;   // kChainFound only, else 0
};
constexpr size_t kSampleChainSize = 36;
size_t encode_sample_chain(const SampleChain& m, uint8_t* out, size_t cap);
// kBadValue: unknown mode or flags, temperature not in (0, inf), kCdf fields in another mode,
// a sum in kPrepare, a coin outside [0, 1), a row without kChainFound.
MsgStatus decode_sample_chain(const uint8_t* p, size_t len, SampleChain* out);

// ---- SAMPLE_TOP (20): u32 session_id, u32 pos, u8 stage, u8 flags, u16 count,
// f32 temperature, f32 max, f32 sum, f32 cutoff, u32 after_index, f32 after_prob ----
constexpr uint8_t kTopAfter = 1;  // only candidates after (after_prob, after_index)
struct SampleTop {
  uint32_t session_id = 0;
  uint32_t pos = 0;
  uint8_t stage = 0;   // 0: every worker answers; k: only stage k
  uint8_t flags = 0;   // kTopAfter
  uint16_t count = 1;  // at most this many candidates (>= 1)
  float temperature = 1.0f;
  float max = 0.0f;
  float sum = 0.0f;          // the softmax denominator (the SAMPLE_CHAIN kSum result)
  float cutoff = 0.0f;       // (1 - topp) / (vocab - 1): smaller probabilities are no candidates
  uint32_t after_index = 0;  // kTopAfter, else 0
  float after_prob = 0.0f;   // kTopAfter (not NaN), else 0
};
constexpr size_t kSampleTopSize = 36;
size_t encode_sample_top(const SampleTop& m, uint8_t* out, size_t cap);
// kBadValue: unknown flags, count 0, temperature not in (0, inf), a NaN after_prob, or
// after fields nonzero without kTopAfter.
MsgStatus decode_sample_top(const uint8_t* p, size_t len, SampleTop* out);

// ---- SAMPLE_CANDS (21): u32 session_id, u32 pos, u8 stage, u8 flags, u16 count, u32 n0,
// u32 after_index, f32 after_prob, f32 pmax, u32 pargmax, count x (u32 index, f32 prob) ----
// flags: kTopAfter (echoed from the request), kCandsHasMax, kCandsFirstNaN (the slice's
// probabilities, as CLASS_SLICE's flags describe its logits).
constexpr uint8_t kCandsHasMax = 2;
constexpr uint8_t kCandsFirstNaN = 4;
struct SampleCandsHeader {
  uint32_t session_id = 0;
  uint32_t pos = 0;
  uint8_t stage = 0;
  uint8_t flags = 0;
  uint16_t count = 0;
  uint32_t n0 = 0;  // the slice's rows whose probability is >= the cutoff
  uint32_t after_index = 0;
  float after_prob = 0.0f;
  float pmax = 0.0f;     // kCandsHasMax: the slice's largest non-NaN probability, else 0
  uint32_t pargmax = 0;  // kCandsHasMax: its lowest row, else 0
};
constexpr size_t kSampleCandsHeaderSize = 32;
// At most this many candidates per frame: never longer than an ACTIVATION of the same model.
uint32_t sample_cands_max_count(uint32_t dim);
size_t encode_sample_cands(const SampleCandsHeader& h, const ProbIndex* c, uint8_t* out,
                           size_t cap);
struct SampleCandsView {
  SampleCandsHeader h;
  const uint8_t* data = nullptr;  // count x (u32 index, f32 prob): sample_cand_at()
};
ProbIndex sample_cand_at(const SampleCandsView& v, uint32_t i);
// kBadLength unless 32 + 8 * count bytes; kBadCount: count > n0; kBadValue: unknown flags,
// pmax/pargmax without kCandsHasMax, a NaN probability, candidates not strictly in top-p
// order (probability descending, then index ascending) or not after the echoed boundary.
MsgStatus decode_sample_cands(const uint8_t* p, size_t len, SampleCandsView* out);

// Runs the decoder for `type` (validation only). kBadValue for an unknown type.
MsgStatus validate_message(uint8_t type, const uint8_t* p, size_t len);

}  // namespace llmwire
