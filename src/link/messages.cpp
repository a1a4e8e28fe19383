#include "link/messages.h"

#include <string.h>

#include "engine/crc32c.h"
#include "engine/image_header.h"  // load_u16/load_u32/load_u64/store_*

namespace llmwire {

static_assert(kHelloMaxSize <= kMaxPayload, "HELLO must fit a frame");
static_assert(kStatsMaxSize <= kMaxPayload, "STATS must fit a frame");
static_assert(kErrorHeaderSize + kMaxErrorText <= kMaxPayload, "ERROR must fit a frame");
static_assert(kMaxStages <= 255, "count is a u8");
static_assert(sizeof(float) == 4, "fp32 wire format");

const char* msg_type_name(uint8_t type) {
  switch (type) {
    case 1:
      return "HELLO";
    case 2:
      return "ACTIVATION";
    case 3:
      return "NEED_REPLAY";
    case 4:
      return "RESET";
    case 5:
      return "STATS_REQUEST";
    case 6:
      return "STATS";
    case 7:
      return "ERROR";
    case 8:
      return "HOP_NAK";
    case 9:
      return "HOP_MARK";
    case 10:
      return "HOP_PATCH";
    case 11:
      return "ACTIVATION_BATCH";
    case 16:
      return "CLASSIFY";
    case 17:
      return "CLASS_LOGITS";
    case 18:
      return "CLASS_SLICE";
    case 19:
      return "SAMPLE_CHAIN";
    case 20:
      return "SAMPLE_TOP";
    case 21:
      return "SAMPLE_CANDS";
    default:
      return "UNKNOWN";
  }
}

const char* msg_status_name(MsgStatus s) {
  switch (s) {
    case MsgStatus::kOk:
      return "ok";
    case MsgStatus::kTooShort:
      return "payload too short";
    case MsgStatus::kBadLength:
      return "payload length does not match its contents";
    case MsgStatus::kBadCount:
      return "entry count out of range";
    case MsgStatus::kBadDim:
      return "activation length is not a positive number of floats";
    case MsgStatus::kTextTooLong:
      return "error text too long";
    case MsgStatus::kBadValue:
      return "undefined field value";
  }
  return "unknown";
}

const char* error_code_name(uint8_t code) {
  switch (code) {
    case 1:
      return "wrong model";
    case 2:
      return "wrong stage order";
    case 3:
      return "protocol version";
    case 4:
      return "dims mismatch";
    case 5:
      return "sequence full";
    case 6:
      return "internal";
    default:
      return "unknown error";
  }
}

// ---- HELLO ----

void encode_stage_info(const StageInfo& s, uint8_t out[kStageInfoSize]) {
  store_u16(out + 0, s.protocol_version);
  store_u16(out + 2, s.firmware_version);
  store_u32(out + 4, s.boot_id);
  store_u64(out + 8, s.model_id);
  store_u32(out + 16, s.stage_index);
  store_u32(out + 20, s.stage_count);
  store_u32(out + 24, s.layer_begin);
  store_u32(out + 28, s.layer_end);
  store_u32(out + 32, s.dim);
  store_u32(out + 36, s.n_layers);
  store_u32(out + 40, s.seq_len);
  store_u32(out + 44, s.kv_type);
}

void decode_stage_info(const uint8_t in[kStageInfoSize], StageInfo* s) {
  s->protocol_version = load_u16(in + 0);
  s->firmware_version = load_u16(in + 2);
  s->boot_id = load_u32(in + 4);
  s->model_id = load_u64(in + 8);
  s->stage_index = load_u32(in + 16);
  s->stage_count = load_u32(in + 20);
  s->layer_begin = load_u32(in + 24);
  s->layer_end = load_u32(in + 28);
  s->dim = load_u32(in + 32);
  s->n_layers = load_u32(in + 36);
  s->seq_len = load_u32(in + 40);
  s->kv_type = load_u32(in + 44);
}

size_t encode_hello(const StageInfo* stages, size_t count, uint8_t* out, size_t cap) {
  if (!stages || !out || count == 0 || count > kMaxStages) return 0;
  const size_t n = kHelloHeaderSize + count * kStageInfoSize;
  if (cap < n) return 0;
  out[0] = (uint8_t)count;
  out[1] = out[2] = out[3] = 0;
  for (size_t i = 0; i < count; i++) {
    encode_stage_info(stages[i], out + kHelloHeaderSize + i * kStageInfoSize);
  }
  return n;
}

StageInfo HelloView::entry(size_t i) const {
  StageInfo s;
  if (entries && i < count) decode_stage_info(entries + i * kStageInfoSize, &s);
  return s;
}

MsgStatus decode_hello(const uint8_t* p, size_t len, HelloView* out) {
  if (!p || len < kHelloHeaderSize) return MsgStatus::kTooShort;
  const size_t count = p[0];
  if (count == 0 || count > kMaxStages) return MsgStatus::kBadCount;
  if (len != kHelloHeaderSize + count * kStageInfoSize) return MsgStatus::kBadLength;
  if (out) {
    out->count = (uint8_t)count;
    out->entries = p + kHelloHeaderSize;
  }
  return MsgStatus::kOk;
}

size_t hello_append(const uint8_t* in, size_t in_len, const StageInfo& mine, uint8_t* out,
                    size_t cap) {
  HelloView v;
  if (!out || decode_hello(in, in_len, &v) != MsgStatus::kOk) return 0;
  if (v.count >= kMaxStages) return 0;
  const size_t n = in_len + kStageInfoSize;
  if (cap < n) return 0;
  if (in != out) memmove(out, in, in_len);
  out[0] = (uint8_t)(v.count + 1);
  encode_stage_info(mine, out + in_len);
  return n;
}

// ---- ACTIVATION ----

size_t activation_size(uint32_t dim) {
  if (dim == 0 || dim > kMaxActivationDim) return 0;
  return kActivationHeaderSize + (size_t)dim * 4;
}

static inline uint32_t f32_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}
static inline float bits_f32(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}

size_t encode_activation(const ActivationHeader& h, const float* x, uint32_t dim, uint8_t* out,
                         size_t cap) {
  const size_t n = activation_size(dim);
  if (n == 0 || !x || !out || cap < n) return 0;
  store_u32(out + 0, h.session_id);
  store_u32(out + 4, h.pos);
  store_u16(out + 8, h.epoch);
  out[10] = h.dest_stage;
  out[11] = h.flags;
  uint8_t* d = out + kActivationHeaderSize;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  memcpy(d, x, (size_t)dim * 4);
#else
  for (uint32_t i = 0; i < dim; i++) store_u32(d + 4 * (size_t)i, f32_bits(x[i]));
#endif
  return n;
}

void load_f32_array(const uint8_t* src, uint32_t dim, float* out) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  memcpy(out, src, (size_t)dim * 4);
#else
  for (uint32_t i = 0; i < dim; i++) out[i] = bits_f32(load_u32(src + 4 * (size_t)i));
#endif
}

void store_f32_array(const float* v, uint32_t n, uint8_t* d) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  memcpy(d, v, (size_t)n * 4);
#else
  for (uint32_t i = 0; i < n; i++) store_u32(d + 4 * (size_t)i, f32_bits(v[i]));
#endif
}

float ActivationView::at(uint32_t i) const {
  if (!data || i >= dim) return 0.0f;
  return bits_f32(load_u32(data + 4 * (size_t)i));
}

void ActivationView::copy_to(float* out) const {
  if (data && out) load_f32_array(data, dim, out);
}

// A payload of `header` bytes then 1..max_count floats: the float count, or 0 when the length
// fits no such payload. One rule for every vector message, so no decoder forgets a bound.
static uint32_t float_body_count(size_t len, size_t header, size_t max_count) {
  if (len <= header || (len - header) % 4 != 0 || (len - header) / 4 > max_count) return 0;
  return (uint32_t)((len - header) / 4);
}

MsgStatus decode_activation(const uint8_t* p, size_t len, ActivationView* out) {
  if (!p || len < kActivationHeaderSize) return MsgStatus::kTooShort;
  const uint32_t dim = float_body_count(len, kActivationHeaderSize, kMaxActivationDim);
  if (dim == 0) return MsgStatus::kBadDim;
  if (out) {
    out->h.session_id = load_u32(p + 0);
    out->h.pos = load_u32(p + 4);
    out->h.epoch = load_u16(p + 8);
    out->h.dest_stage = p[10];
    out->h.flags = p[11];
    out->dim = dim;
    out->data = p + kActivationHeaderSize;
  }
  return MsgStatus::kOk;
}

// ---- ACTIVATION_BATCH ----

uint32_t activation_batch_max_count(uint32_t dim) {
  if (dim == 0) return 0;
  const size_t n = (kMaxPayload - kActivationBatchHeaderSize) / (4 * (size_t)dim);
  return n > 0xFFFF ? 0xFFFF : (uint32_t)n;
}

size_t activation_batch_size(uint32_t count, uint32_t dim) {
  if (count == 0 || dim == 0 || dim > 0xFFFF || count > activation_batch_max_count(dim)) return 0;
  return kActivationBatchHeaderSize + (size_t)count * dim * 4;
}

size_t encode_activation_batch_header(const ActivationHeader& h, uint32_t count, uint32_t dim,
                                      uint8_t* out, size_t cap) {
  const size_t n = activation_batch_size(count, dim);
  if (n == 0 || !out || cap < n || h.pos > 0xFFFFFFFFu - count) return 0;
  store_u32(out + 0, h.session_id);
  store_u32(out + 4, h.pos);
  store_u16(out + 8, h.epoch);
  out[10] = h.dest_stage;
  out[11] = h.flags;
  store_u16(out + 12, (uint16_t)count);
  store_u16(out + 14, (uint16_t)dim);
  return n;
}

size_t encode_activation_batch(const ActivationHeader& h, const float* x, uint32_t count,
                               uint32_t dim, uint8_t* out, size_t cap) {
  if (!x) return 0;
  const size_t n = encode_activation_batch_header(h, count, dim, out, cap);
  if (n) store_f32_array(x, count * dim, out + kActivationBatchHeaderSize);
  return n;
}

void ActivationBatchView::copy_to(uint32_t first, uint32_t n, float* out) const {
  if (!data || !out || first > count || n > count - first) return;
  load_f32_array(data + (size_t)first * dim * 4, n * dim, out);
}

MsgStatus decode_activation_batch(const uint8_t* p, size_t len, ActivationBatchView* out) {
  if (!p || len < kActivationBatchHeaderSize) return MsgStatus::kTooShort;
  const uint32_t pos = load_u32(p + 4), count = load_u16(p + 12), dim = load_u16(p + 14);
  if (count == 0) return MsgStatus::kBadCount;
  if (dim == 0) return MsgStatus::kBadDim;
  if (len > kMaxPayload || len != kActivationBatchHeaderSize + (size_t)count * dim * 4)
    return MsgStatus::kBadLength;
  if (pos > 0xFFFFFFFFu - count) return MsgStatus::kBadValue;
  if (out) {
    out->h.session_id = load_u32(p + 0);
    out->h.pos = pos;
    out->h.epoch = load_u16(p + 8);
    out->h.dest_stage = p[10];
    out->h.flags = p[11];
    out->count = count;
    out->dim = dim;
    out->data = p + kActivationBatchHeaderSize;
  }
  return MsgStatus::kOk;
}

// ---- NEED_REPLAY ----

size_t encode_need_replay(const NeedReplay& m, uint8_t* out, size_t cap) {
  if (!out || cap < kNeedReplaySize) return 0;
  store_u32(out + 0, m.session_id);
  store_u32(out + 4, m.pos);
  store_u32(out + 8, m.have);
  store_u16(out + 12, m.epoch);
  out[14] = m.stage_index;
  out[15] = m.reason;
  return kNeedReplaySize;
}

MsgStatus decode_need_replay(const uint8_t* p, size_t len, NeedReplay* out) {
  if (!p || len < kNeedReplaySize) return MsgStatus::kTooShort;
  if (len != kNeedReplaySize) return MsgStatus::kBadLength;
  if (p[15] > (uint8_t)ReplayReason::kUnknownSession) return MsgStatus::kBadValue;
  if (out) {
    out->session_id = load_u32(p + 0);
    out->pos = load_u32(p + 4);
    out->have = load_u32(p + 8);
    out->epoch = load_u16(p + 12);
    out->stage_index = p[14];
    out->reason = p[15];
  }
  return MsgStatus::kOk;
}

// ---- RESET / STATS_REQUEST: one u32 ----

static size_t encode_u32_msg(uint32_t v, uint8_t* out, size_t cap) {
  if (!out || cap < 4) return 0;
  store_u32(out, v);
  return 4;
}

static MsgStatus decode_u32_msg(const uint8_t* p, size_t len, uint32_t* v) {
  if (!p || len < 4) return MsgStatus::kTooShort;
  if (len != 4) return MsgStatus::kBadLength;
  if (v) *v = load_u32(p);
  return MsgStatus::kOk;
}

size_t encode_reset(uint32_t session_id, uint8_t* out, size_t cap) {
  return encode_u32_msg(session_id, out, cap);
}
MsgStatus decode_reset(const uint8_t* p, size_t len, uint32_t* session_id) {
  return decode_u32_msg(p, len, session_id);
}
size_t encode_stats_request(uint32_t request_id, uint8_t* out, size_t cap) {
  return encode_u32_msg(request_id, out, cap);
}
MsgStatus decode_stats_request(const uint8_t* p, size_t len, uint32_t* request_id) {
  return decode_u32_msg(p, len, request_id);
}

// ---- STATS ----

void encode_stage_stats(const StageStats& s, uint8_t out[kStageStatsSize]) {
  store_u32(out + 0, s.stage_index);
  store_u32(out + 4, s.boot_id);
  store_u32(out + 8, s.frames_rx);
  store_u32(out + 12, s.frames_tx);
  store_u32(out + 16, s.crc_errors);
  store_u32(out + 20, s.resyncs);
  store_u32(out + 24, s.oversize);
  store_u32(out + 28, s.partial_timeouts);
  store_u32(out + 32, s.positions_computed);
  store_u32(out + 36, s.need_replay_sent);
  store_u64(out + 40, s.compute_us);
  store_u64(out + 48, s.link_wait_us);
  store_u32(out + 56, s.version_mismatch);
  store_u32(out + 60, s.frames_resent);
}

void decode_stage_stats(const uint8_t in[kStageStatsSize], StageStats* s) {
  s->stage_index = load_u32(in + 0);
  s->boot_id = load_u32(in + 4);
  s->frames_rx = load_u32(in + 8);
  s->frames_tx = load_u32(in + 12);
  s->crc_errors = load_u32(in + 16);
  s->resyncs = load_u32(in + 20);
  s->oversize = load_u32(in + 24);
  s->partial_timeouts = load_u32(in + 28);
  s->positions_computed = load_u32(in + 32);
  s->need_replay_sent = load_u32(in + 36);
  s->compute_us = load_u64(in + 40);
  s->link_wait_us = load_u64(in + 48);
  s->version_mismatch = load_u32(in + 56);
  s->frames_resent = load_u32(in + 60);
}

size_t encode_stats(uint32_t request_id, const StageStats* stages, size_t count, uint8_t* out,
                    size_t cap) {
  if (!out || count > kMaxStages || (count > 0 && !stages)) return 0;
  const size_t n = kStatsHeaderSize + count * kStageStatsSize;
  if (cap < n) return 0;
  store_u32(out + 0, request_id);
  out[4] = (uint8_t)count;
  out[5] = out[6] = out[7] = 0;
  for (size_t i = 0; i < count; i++) {
    encode_stage_stats(stages[i], out + kStatsHeaderSize + i * kStageStatsSize);
  }
  return n;
}

StageStats StatsView::entry(size_t i) const {
  StageStats s;
  if (entries && i < count) decode_stage_stats(entries + i * kStageStatsSize, &s);
  return s;
}

MsgStatus decode_stats(const uint8_t* p, size_t len, StatsView* out) {
  if (!p || len < kStatsHeaderSize) return MsgStatus::kTooShort;
  const size_t count = p[4];
  if (count > kMaxStages) return MsgStatus::kBadCount;
  if (len != kStatsHeaderSize + count * kStageStatsSize) return MsgStatus::kBadLength;
  if (out) {
    out->request_id = load_u32(p);
    out->count = (uint8_t)count;
    out->entries = p + kStatsHeaderSize;
  }
  return MsgStatus::kOk;
}

size_t stats_append(const uint8_t* in, size_t in_len, const StageStats& mine, uint8_t* out,
                    size_t cap) {
  StatsView v;
  if (!out || decode_stats(in, in_len, &v) != MsgStatus::kOk) return 0;
  if (v.count >= kMaxStages) return 0;
  const size_t n = in_len + kStageStatsSize;
  if (cap < n) return 0;
  if (in != out) memmove(out, in, in_len);
  out[4] = (uint8_t)(v.count + 1);
  encode_stage_stats(mine, out + in_len);
  return n;
}

// ---- ERROR ----

size_t encode_error(uint8_t stage_index, uint8_t code, const char* text, size_t text_len,
                    uint8_t* out, size_t cap) {
  if (!out) return 0;
  if (!text) text_len = 0;
  if (text_len > kMaxErrorText) text_len = kMaxErrorText;
  const size_t n = kErrorHeaderSize + text_len;
  if (cap < n) return 0;
  out[0] = stage_index;
  out[1] = code;
  store_u16(out + 2, (uint16_t)text_len);
  if (text_len > 0) memmove(out + kErrorHeaderSize, text, text_len);
  return n;
}

MsgStatus decode_error(const uint8_t* p, size_t len, ErrorMsg* out) {
  if (!p || len < kErrorHeaderSize) return MsgStatus::kTooShort;
  const size_t text_len = load_u16(p + 2);
  if (text_len > kMaxErrorText) return MsgStatus::kTextTooLong;
  if (len != kErrorHeaderSize + text_len) return MsgStatus::kBadLength;
  if (out) {
    out->stage_index = p[0];
    out->code = p[1];
    out->text_len = (uint16_t)text_len;
    out->text = reinterpret_cast<const char*>(p + kErrorHeaderSize);
  }
  return MsgStatus::kOk;
}

// ---- HOP_NAK / HOP_MARK ----

uint8_t hop_block_check(const uint8_t* block, size_t len) {
  return (uint8_t)crc32c(block, len);
}

namespace {

bool hop_digest_ok(size_t frame_len, uint8_t shift) {
  return frame_len >= kFrameOverhead && frame_len <= kMaxFrameSize && shift >= kHopMinBlockShift &&
         shift <= kHopMaxBlockShift && hop_blocks(frame_len, shift) <= kHopMaxBlocks;
}

}  // namespace

size_t encode_hop_nak(const HopNak& m, uint8_t* out, size_t cap) {
  if (!out || cap < kHopNakSize || m.ttl == 0) return 0;
  store_u16(out + 0, m.from_seq);
  out[2] = m.stage;
  out[3] = m.ttl;
  if (m.frame_len == 0) return kHopNakSize;
  if (!hop_digest_ok(m.frame_len, m.block_shift)) return 0;
  const size_t blocks = hop_blocks(m.frame_len, m.block_shift);
  if (cap < kHopNakSize + 3 + blocks) return 0;
  store_u16(out + 4, m.frame_len);
  out[6] = m.block_shift;
  memcpy(out + 7, m.checks, blocks);
  return kHopNakSize + 3 + blocks;
}

MsgStatus decode_hop_nak(const uint8_t* p, size_t len, HopNak* out) {
  if (!p || len < kHopNakSize) return MsgStatus::kTooShort;
  if (len != kHopNakSize && len < kHopNakSize + 3) return MsgStatus::kBadLength;
  if (p[3] == 0) return MsgStatus::kBadValue;
  uint16_t frame_len = 0;
  uint8_t shift = 0;
  size_t blocks = 0;
  if (len > kHopNakSize) {
    frame_len = load_u16(p + 4);
    shift = p[6];
    if (!hop_digest_ok(frame_len, shift)) return MsgStatus::kBadValue;
    blocks = hop_blocks(frame_len, shift);
    if (len != kHopNakSize + 3 + blocks) return MsgStatus::kBadLength;
  }
  if (out) {
    out->from_seq = load_u16(p + 0);
    out->stage = p[2];
    out->ttl = p[3];
    out->frame_len = frame_len;
    out->block_shift = shift;
    if (blocks) memcpy(out->checks, p + 7, blocks);
  }
  return MsgStatus::kOk;
}

size_t encode_hop_patch(uint16_t seq, uint16_t offset, const uint8_t* bytes, size_t n, uint8_t* out,
                        size_t cap) {
  if (!out || !bytes || n == 0 || (size_t)offset + n > kMaxFrameSize) return 0;
  if (cap < kHopPatchHeaderSize + n) return 0;
  store_u16(out + 0, seq);
  store_u16(out + 2, offset);
  memmove(out + kHopPatchHeaderSize, bytes, n);
  return kHopPatchHeaderSize + n;
}

MsgStatus decode_hop_patch(const uint8_t* p, size_t len, HopPatchView* out) {
  if (!p || len <= kHopPatchHeaderSize) return MsgStatus::kTooShort;
  const size_t n = len - kHopPatchHeaderSize;
  const size_t offset = load_u16(p + 2);
  if (offset + n > kMaxFrameSize) return MsgStatus::kBadValue;
  if (out) {
    out->seq = load_u16(p + 0);
    out->offset = (uint16_t)offset;
    out->bytes = p + kHopPatchHeaderSize;
    out->n = (uint16_t)n;
  }
  return MsgStatus::kOk;
}

size_t encode_hop_mark(const HopMark& m, uint8_t* out, size_t cap) {
  if (!out || cap < kHopMarkSize) return 0;
  if (m.flags & ~kHopMarkAnswer) return 0;
  store_u16(out + 0, m.next_seq);
  out[2] = m.kept;
  out[3] = m.flags;
  return kHopMarkSize;
}

MsgStatus decode_hop_mark(const uint8_t* p, size_t len, HopMark* out) {
  if (!p || len < kHopMarkSize) return MsgStatus::kTooShort;
  if (len != kHopMarkSize) return MsgStatus::kBadLength;
  if (p[3] & ~kHopMarkAnswer) return MsgStatus::kBadValue;
  if (out) {
    out->next_seq = load_u16(p + 0);
    out->kept = p[2];
    out->flags = p[3];
  }
  return MsgStatus::kOk;
}

// ---- Classifier split ----

size_t encode_classify(const ClassifyHeader& h, const float* xn, uint32_t dim, uint8_t* out,
                       size_t cap) {
  if (dim == 0 || dim > kMaxActivationDim || !xn || !out) return 0;
  if (h.mode > (uint8_t)ClassifyMode::kLogits) return 0;
  const size_t n = kClassifyHeaderSize + (size_t)dim * 4;
  if (cap < n) return 0;
  store_u32(out + 0, h.session_id);
  store_u32(out + 4, h.pos);
  out[8] = h.mode;
  out[9] = out[10] = out[11] = 0;
  store_f32_array(xn, dim, out + kClassifyHeaderSize);
  return n;
}

MsgStatus decode_classify(const uint8_t* p, size_t len, ClassifyView* out) {
  if (!p || len < kClassifyHeaderSize) return MsgStatus::kTooShort;
  const uint32_t dim = float_body_count(len, kClassifyHeaderSize, kMaxActivationDim);
  if (dim == 0) return MsgStatus::kBadDim;
  if (p[8] > (uint8_t)ClassifyMode::kLogits) return MsgStatus::kBadValue;
  if (out) {
    out->h.session_id = load_u32(p + 0);
    out->h.pos = load_u32(p + 4);
    out->h.mode = p[8];
    out->dim = dim;
    out->data = p + kClassifyHeaderSize;
  }
  return MsgStatus::kOk;
}

uint32_t class_logits_max_count(uint32_t dim) {
  const size_t act = activation_size(dim);
  if (act <= kClassLogitsHeaderSize) return 0;
  return (uint32_t)((act - kClassLogitsHeaderSize) / 4);
}

size_t encode_class_logits(const ClassLogitsHeader& h, const float* v, uint32_t count, uint8_t* out,
                           size_t cap) {
  if (count == 0 || !v || !out || count > (kMaxPayload - kClassLogitsHeaderSize) / 4) return 0;
  const size_t n = kClassLogitsHeaderSize + (size_t)count * 4;
  if (cap < n || (uint64_t)h.first_row + count > 0xFFFFFFFFull) return 0;
  store_u32(out + 0, h.session_id);
  store_u32(out + 4, h.pos);
  store_u32(out + 8, h.first_row);
  out[12] = h.stage;
  out[13] = out[14] = out[15] = 0;
  store_f32_array(v, count, out + kClassLogitsHeaderSize);
  return n;
}

MsgStatus decode_class_logits(const uint8_t* p, size_t len, ClassLogitsView* out) {
  if (!p || len < kClassLogitsHeaderSize) return MsgStatus::kTooShort;
  // No frame carries more floats (the encoder refuses them too).
  const uint32_t count =
      float_body_count(len, kClassLogitsHeaderSize, (kMaxPayload - kClassLogitsHeaderSize) / 4);
  if (count == 0) return MsgStatus::kBadDim;
  const uint32_t first = load_u32(p + 8);
  if ((uint64_t)first + count > 0xFFFFFFFFull) return MsgStatus::kBadValue;
  if (out) {
    out->h.session_id = load_u32(p + 0);
    out->h.pos = load_u32(p + 4);
    out->h.first_row = first;
    out->h.stage = p[12];
    out->count = count;
    out->data = p + kClassLogitsHeaderSize;
  }
  return MsgStatus::kOk;
}

static bool class_slice_ok(const ClassSlice& m, uint32_t max_bits) {
  if (m.row_begin > m.row_end || (m.flags & ~(kSliceHasMax | kSliceFirstNaN))) return false;
  if (m.flags & kSliceHasMax) return m.argmax >= m.row_begin && m.argmax < m.row_end;
  return m.argmax == 0 && max_bits == 0;
}

size_t encode_class_slice(const ClassSlice& m, uint8_t* out, size_t cap) {
  if (!out || cap < kClassSliceSize || !class_slice_ok(m, f32_bits(m.max))) return 0;
  store_u32(out + 0, m.session_id);
  store_u32(out + 4, m.pos);
  store_u32(out + 8, m.row_begin);
  store_u32(out + 12, m.row_end);
  out[16] = m.stage;
  out[17] = m.flags;
  store_u16(out + 18, 0);
  store_u32(out + 20, f32_bits(m.max));
  store_u32(out + 24, m.argmax);
  return kClassSliceSize;
}

MsgStatus decode_class_slice(const uint8_t* p, size_t len, ClassSlice* out) {
  if (!p || len < kClassSliceSize) return MsgStatus::kTooShort;
  if (len != kClassSliceSize) return MsgStatus::kBadLength;
  ClassSlice m;
  m.session_id = load_u32(p + 0);
  m.pos = load_u32(p + 4);
  m.row_begin = load_u32(p + 8);
  m.row_end = load_u32(p + 12);
  m.stage = p[16];
  m.flags = p[17];
  const uint32_t max_bits = load_u32(p + 20);
  m.max = bits_f32(max_bits);
  m.argmax = load_u32(p + 24);
  if (!class_slice_ok(m, max_bits)) return MsgStatus::kBadValue;
  if (out) *out = m;
  return MsgStatus::kOk;
}

static bool temperature_ok(float t) {
  return t > 0.0f && t < bits_f32(0x7F800000u);
}

static bool sample_chain_ok(const SampleChain& m) {
  if (m.mode > (uint8_t)ChainMode::kPrepare || (m.flags & ~kChainFound)) return false;
  if (!temperature_ok(m.temperature)) return false;
  if (m.mode == (uint8_t)ChainMode::kPrepare && f32_bits(m.sum)) return false;
  if (m.mode != (uint8_t)ChainMode::kCdf) {
    if (m.flags || f32_bits(m.cdf) || f32_bits(m.coin)) return false;
  } else if (!(m.coin >= 0.0f && m.coin < 1.0f)) {
    return false;
  }
  return (m.flags & kChainFound) || m.row == 0;
}

size_t encode_sample_chain(const SampleChain& m, uint8_t* out, size_t cap) {
  if (!out || cap < kSampleChainSize || !sample_chain_ok(m)) return 0;
  store_u32(out + 0, m.session_id);
  store_u32(out + 4, m.pos);
  out[8] = m.mode;
  out[9] = m.flags;
  store_u16(out + 10, 0);
  store_u32(out + 12, f32_bits(m.temperature));
  store_u32(out + 16, f32_bits(m.max));
  store_u32(out + 20, f32_bits(m.sum));
  store_u32(out + 24, f32_bits(m.cdf));
  store_u32(out + 28, f32_bits(m.coin));
  store_u32(out + 32, m.row);
  return kSampleChainSize;
}

MsgStatus decode_sample_chain(const uint8_t* p, size_t len, SampleChain* out) {
  if (!p || len < kSampleChainSize) return MsgStatus::kTooShort;
  if (len != kSampleChainSize) return MsgStatus::kBadLength;
  SampleChain m;
  m.session_id = load_u32(p + 0);
  m.pos = load_u32(p + 4);
  m.mode = p[8];
  m.flags = p[9];
  m.temperature = bits_f32(load_u32(p + 12));
  m.max = bits_f32(load_u32(p + 16));
  m.sum = bits_f32(load_u32(p + 20));
  m.cdf = bits_f32(load_u32(p + 24));
  m.coin = bits_f32(load_u32(p + 28));
  m.row = load_u32(p + 32);
  if (!sample_chain_ok(m)) return MsgStatus::kBadValue;
  if (out) *out = m;
  return MsgStatus::kOk;
}

static bool sample_top_ok(const SampleTop& m) {
  if ((m.flags & ~kTopAfter) || m.count == 0 || !temperature_ok(m.temperature)) return false;
  if (m.flags & kTopAfter) return m.after_prob == m.after_prob;
  return m.after_index == 0 && f32_bits(m.after_prob) == 0;
}

size_t encode_sample_top(const SampleTop& m, uint8_t* out, size_t cap) {
  if (!out || cap < kSampleTopSize || !sample_top_ok(m)) return 0;
  store_u32(out + 0, m.session_id);
  store_u32(out + 4, m.pos);
  out[8] = m.stage;
  out[9] = m.flags;
  store_u16(out + 10, m.count);
  store_u32(out + 12, f32_bits(m.temperature));
  store_u32(out + 16, f32_bits(m.max));
  store_u32(out + 20, f32_bits(m.sum));
  store_u32(out + 24, f32_bits(m.cutoff));
  store_u32(out + 28, m.after_index);
  store_u32(out + 32, f32_bits(m.after_prob));
  return kSampleTopSize;
}

MsgStatus decode_sample_top(const uint8_t* p, size_t len, SampleTop* out) {
  if (!p || len < kSampleTopSize) return MsgStatus::kTooShort;
  if (len != kSampleTopSize) return MsgStatus::kBadLength;
  SampleTop m;
  m.session_id = load_u32(p + 0);
  m.pos = load_u32(p + 4);
  m.stage = p[8];
  m.flags = p[9];
  m.count = load_u16(p + 10);
  m.temperature = bits_f32(load_u32(p + 12));
  m.max = bits_f32(load_u32(p + 16));
  m.sum = bits_f32(load_u32(p + 20));
  m.cutoff = bits_f32(load_u32(p + 24));
  m.after_index = load_u32(p + 28);
  m.after_prob = bits_f32(load_u32(p + 32));
  if (!sample_top_ok(m)) return MsgStatus::kBadValue;
  if (out) *out = m;
  return MsgStatus::kOk;
}

uint32_t sample_cands_max_count(uint32_t dim) {
  const size_t act = activation_size(dim);
  if (act <= kSampleCandsHeaderSize) return 0;
  return (uint32_t)((act - kSampleCandsHeaderSize) / 8);
}

// Top-p order (engine/sampler.h topp_before): a strictly before b.
static bool cand_before(float pa, uint32_t ia, float pb, uint32_t ib) {
  if (pa != pb) return pa > pb;
  return ia < ib;
}

static MsgStatus sample_cands_check(const SampleCandsHeader& h, const uint8_t* c) {
  const uint8_t known = kTopAfter | kCandsHasMax | kCandsFirstNaN;
  if (h.flags & ~known) return MsgStatus::kBadValue;
  if (!(h.flags & kCandsHasMax) && (h.pargmax || f32_bits(h.pmax))) return MsgStatus::kBadValue;
  if (!(h.flags & kTopAfter) && (h.after_index || f32_bits(h.after_prob)))
    return MsgStatus::kBadValue;
  if (h.count > h.n0) return MsgStatus::kBadCount;
  bool have = (h.flags & kTopAfter) != 0;
  float pp = h.after_prob;
  uint32_t pi = h.after_index;
  for (uint32_t i = 0; i < h.count; i++) {
    const uint32_t idx = load_u32(c + 8 * (size_t)i);
    const float pr = bits_f32(load_u32(c + 8 * (size_t)i + 4));
    if (pr != pr) return MsgStatus::kBadValue;
    if (have && !cand_before(pp, pi, pr, idx)) return MsgStatus::kBadValue;
    have = true;
    pp = pr;
    pi = idx;
  }
  return MsgStatus::kOk;
}

size_t encode_sample_cands(const SampleCandsHeader& h, const ProbIndex* c, uint8_t* out,
                           size_t cap) {
  const size_t len = kSampleCandsHeaderSize + 8 * (size_t)h.count;
  if (!out || (h.count && !c) || len > kMaxPayload || cap < len) return 0;
  store_u32(out + 0, h.session_id);
  store_u32(out + 4, h.pos);
  out[8] = h.stage;
  out[9] = h.flags;
  store_u16(out + 10, h.count);
  store_u32(out + 12, h.n0);
  store_u32(out + 16, h.after_index);
  store_u32(out + 20, f32_bits(h.after_prob));
  store_u32(out + 24, f32_bits(h.pmax));
  store_u32(out + 28, h.pargmax);
  uint8_t* d = out + kSampleCandsHeaderSize;
  for (uint32_t i = 0; i < h.count; i++) {
    store_u32(d + 8 * (size_t)i, c[i].index);
    store_u32(d + 8 * (size_t)i + 4, f32_bits(c[i].prob));
  }
  if (sample_cands_check(h, d) != MsgStatus::kOk) return 0;
  return len;
}

MsgStatus decode_sample_cands(const uint8_t* p, size_t len, SampleCandsView* out) {
  if (!p || len < kSampleCandsHeaderSize) return MsgStatus::kTooShort;
  SampleCandsHeader h;
  h.session_id = load_u32(p + 0);
  h.pos = load_u32(p + 4);
  h.stage = p[8];
  h.flags = p[9];
  h.count = load_u16(p + 10);
  h.n0 = load_u32(p + 12);
  h.after_index = load_u32(p + 16);
  h.after_prob = bits_f32(load_u32(p + 20));
  h.pmax = bits_f32(load_u32(p + 24));
  h.pargmax = load_u32(p + 28);
  if (len != kSampleCandsHeaderSize + 8 * (size_t)h.count) return MsgStatus::kBadLength;
  const MsgStatus s = sample_cands_check(h, p + kSampleCandsHeaderSize);
  if (s != MsgStatus::kOk) return s;
  if (out) {
    out->h = h;
    out->data = p + kSampleCandsHeaderSize;
  }
  return MsgStatus::kOk;
}

ProbIndex sample_cand_at(const SampleCandsView& v, uint32_t i) {
  ProbIndex c;
  c.index = load_u32(v.data + 8 * (size_t)i);
  c.prob = bits_f32(load_u32(v.data + 8 * (size_t)i + 4));
  return c;
}

MsgStatus validate_message(uint8_t type, const uint8_t* p, size_t len) {
  switch (type) {
    case (uint8_t)MsgType::kHello:
      return decode_hello(p, len, nullptr);
    case (uint8_t)MsgType::kActivation:
      return decode_activation(p, len, nullptr);
    case (uint8_t)MsgType::kNeedReplay:
      return decode_need_replay(p, len, nullptr);
    case (uint8_t)MsgType::kReset:
      return decode_reset(p, len, nullptr);
    case (uint8_t)MsgType::kStatsRequest:
      return decode_stats_request(p, len, nullptr);
    case (uint8_t)MsgType::kStats:
      return decode_stats(p, len, nullptr);
    case (uint8_t)MsgType::kError:
      return decode_error(p, len, nullptr);
    case (uint8_t)MsgType::kHopNak:
      return decode_hop_nak(p, len, nullptr);
    case (uint8_t)MsgType::kHopMark:
      return decode_hop_mark(p, len, nullptr);
    case (uint8_t)MsgType::kClassify:
      return decode_classify(p, len, nullptr);
    case (uint8_t)MsgType::kClassLogits:
      return decode_class_logits(p, len, nullptr);
    case (uint8_t)MsgType::kClassSlice:
      return decode_class_slice(p, len, nullptr);
    case (uint8_t)MsgType::kHopPatch:
      return decode_hop_patch(p, len, nullptr);
    case (uint8_t)MsgType::kActivationBatch:
      return decode_activation_batch(p, len, nullptr);
    case (uint8_t)MsgType::kSampleChain:
      return decode_sample_chain(p, len, nullptr);
    case (uint8_t)MsgType::kSampleTop:
      return decode_sample_top(p, len, nullptr);
    case (uint8_t)MsgType::kSampleCands:
      return decode_sample_cands(p, len, nullptr);
    default:
      return MsgStatus::kBadValue;
  }
}

}  // namespace llmwire
