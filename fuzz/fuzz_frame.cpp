// Fuzz the link receiver and every message decoder with arbitrary bytes. The input is split
// into chunks at fuzzer-chosen points (control bytes from the end of the input), with clock
// jumps that exercise the inter-byte timeout. Checks invariants, never just "no crash":
// every delivered frame re-parses and re-encodes to the same bytes, and every message that
// decodes re-encodes to the same payload.
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <vector>

#include "engine/crc32c.h"
#include "link/frame.h"
#include "link/messages.h"

using namespace llmwire;

namespace {

#define FUZZ_CHECK(c)  \
  do {                 \
    if (!(c)) abort(); \
  } while (0)

void check_messages(uint8_t type, const uint8_t* p, size_t len) {
  static uint8_t out[kMaxPayload + 64];
  HelloView hv;
  if (decode_hello(p, len, &hv) == MsgStatus::kOk) {
    FUZZ_CHECK(len == kHelloHeaderSize + hv.count * kStageInfoSize);
    std::vector<StageInfo> v(hv.count);
    for (size_t i = 0; i < hv.count; i++) v[i] = hv.entry(i);
    const size_t n = encode_hello(v.data(), v.size(), out, sizeof out);
    FUZZ_CHECK(n == len);
    FUZZ_CHECK(memcmp(out + 4, p + 4, len - 4) == 0 && out[0] == p[0]);  // reserved ignored
  }
  ActivationView av;
  if (decode_activation(p, len, &av) == MsgStatus::kOk) {
    std::vector<float> x(av.dim);
    av.copy_to(x.data());
    for (uint32_t i = 0; i < av.dim; i++) {
      const float a = av.at(i);
      FUZZ_CHECK(memcmp(&a, &x[i], 4) == 0);
    }
    const size_t n = encode_activation(av.h, x.data(), av.dim, out, sizeof out);
    FUZZ_CHECK(n == len && memcmp(out, p, len) == 0);
  }
  NeedReplay nr;
  if (decode_need_replay(p, len, &nr) == MsgStatus::kOk) {
    FUZZ_CHECK(encode_need_replay(nr, out, sizeof out) == len && memcmp(out, p, len) == 0);
  }
  uint32_t u;
  if (decode_reset(p, len, &u) == MsgStatus::kOk) {
    FUZZ_CHECK(encode_reset(u, out, sizeof out) == len && memcmp(out, p, len) == 0);
  }
  if (decode_stats_request(p, len, &u) == MsgStatus::kOk) {
    FUZZ_CHECK(encode_stats_request(u, out, sizeof out) == len && memcmp(out, p, len) == 0);
  }
  StatsView sv;
  if (decode_stats(p, len, &sv) == MsgStatus::kOk) {
    FUZZ_CHECK(len == kStatsHeaderSize + sv.count * kStageStatsSize);
    std::vector<StageStats> v(sv.count);
    for (size_t i = 0; i < sv.count; i++) v[i] = sv.entry(i);
    FUZZ_CHECK(encode_stats(sv.request_id, v.data(), v.size(), out, sizeof out) == len);
  }
  ErrorMsg em;
  if (decode_error(p, len, &em) == MsgStatus::kOk) {
    FUZZ_CHECK(em.text_len <= kMaxErrorText && len == kErrorHeaderSize + em.text_len);
    FUZZ_CHECK(encode_error(em.stage_index, em.code, em.text, em.text_len, out, sizeof out) == len);
    FUZZ_CHECK(memcmp(out, p, len) == 0);
  }
  ClassifyView cv;
  if (decode_classify(p, len, &cv) == MsgStatus::kOk) {
    std::vector<float> x(cv.dim);
    load_f32_array(cv.data, cv.dim, x.data());
    const size_t n = encode_classify(cv.h, x.data(), cv.dim, out, sizeof out);
    FUZZ_CHECK(n == len && memcmp(out, p, 9) == 0 && memcmp(out + 12, p + 12, len - 12) == 0);
  }
  ClassLogitsView lv;
  if (decode_class_logits(p, len, &lv) == MsgStatus::kOk) {
    std::vector<float> x(lv.count);
    load_f32_array(lv.data, lv.count, x.data());
    const size_t n = encode_class_logits(lv.h, x.data(), lv.count, out, sizeof out);
    FUZZ_CHECK(n == len && memcmp(out, p, 13) == 0 && memcmp(out + 16, p + 16, len - 16) == 0);
  }
  ClassSlice cs;
  if (decode_class_slice(p, len, &cs) == MsgStatus::kOk) {
    FUZZ_CHECK(cs.row_begin <= cs.row_end);
    FUZZ_CHECK(!(cs.flags & kSliceHasMax) || (cs.argmax >= cs.row_begin && cs.argmax < cs.row_end));
    FUZZ_CHECK(encode_class_slice(cs, out, sizeof out) == len && memcmp(out, p, 18) == 0 &&
               memcmp(out + 20, p + 20, 8) == 0);  // reserved ignored
  }
  ActivationBatchView bv;
  if (decode_activation_batch(p, len, &bv) == MsgStatus::kOk) {
    FUZZ_CHECK(bv.count >= 1 && bv.dim >= 1 && len == 16 + (size_t)4 * bv.count * bv.dim);
    FUZZ_CHECK(len <= kMaxPayload && bv.h.pos <= 0xFFFFFFFFu - bv.count);
    std::vector<float> x((size_t)bv.count * bv.dim);
    bv.copy_to(0, bv.count, x.data());
    const size_t n = encode_activation_batch(bv.h, x.data(), bv.count, bv.dim, out, sizeof out);
    FUZZ_CHECK(n == len && memcmp(out, p, len) == 0);
    FUZZ_CHECK(activation_batch_size(bv.count, bv.dim) == len);
  }
  SampleChain sc;
  if (decode_sample_chain(p, len, &sc) == MsgStatus::kOk) {
    FUZZ_CHECK(len == kSampleChainSize && sc.temperature > 0.0f &&
               sc.mode <= (uint8_t)ChainMode::kPrepare);
    FUZZ_CHECK(encode_sample_chain(sc, out, sizeof out) == len && memcmp(out, p, 10) == 0 &&
               memcmp(out + 12, p + 12, len - 12) == 0);  // reserved ignored
  }
  SampleTop st;
  if (decode_sample_top(p, len, &st) == MsgStatus::kOk) {
    FUZZ_CHECK(len == kSampleTopSize && st.count >= 1);
    FUZZ_CHECK(encode_sample_top(st, out, sizeof out) == len && memcmp(out, p, len) == 0);
  }
  SampleCandsView sv2;
  if (decode_sample_cands(p, len, &sv2) == MsgStatus::kOk) {
    FUZZ_CHECK(len == kSampleCandsHeaderSize + (size_t)8 * sv2.h.count && sv2.h.count <= sv2.h.n0);
    std::vector<ProbIndex> c(sv2.h.count);
    for (uint32_t i = 0; i < sv2.h.count; i++) c[i] = sample_cand_at(sv2, i);
    for (uint32_t i = 1; i < sv2.h.count; i++) FUZZ_CHECK(topp_before(c[i - 1], c[i]));
    FUZZ_CHECK(encode_sample_cands(sv2.h, c.data(), out, sizeof out) == len &&
               memcmp(out, p, len) == 0);
  }
  (void)validate_message(type, p, len);
  (void)msg_type_name(type);
}

struct Sink : FrameSink {
  uint32_t frames = 0;
  void on_frame(const Frame& f) override {
    frames++;
    FUZZ_CHECK(f.version == kProtocolVersion && f.len <= kMaxPayload);
    FUZZ_CHECK(f.raw_len == frame_size(f.len) && f.payload == f.raw + kFrameHeaderSize);
    Frame again;
    FUZZ_CHECK(parse_frame(f.raw, f.raw_len, &again));
    static uint8_t re[kMaxFrameSize];
    FUZZ_CHECK(encode_frame(f.type, f.seq, f.payload, f.len, re, sizeof re) == f.raw_len);
    FUZZ_CHECK(memcmp(re, f.raw, f.raw_len) == 0);
    check_messages(f.type, f.payload, f.len);
  }
};

FrameReceiver* receiver(Sink* sink) {
  static FrameReceiver* rx = nullptr;  // 8 KB: allocate once
  if (!rx) rx = new FrameReceiver(sink);
  return rx;
}

// Structure-aware help: a random CRC almost never matches, so in "fix-up" mode every
// plausible header in the input gets a correct CRC (and, usually, version 1). That drives
// the delivered-frame path and the message decoders behind it as well as the rejections.
void fix_up(std::vector<uint8_t>* v, bool keep_version) {
  uint8_t* b = v->data();
  const size_t n = v->size();
  size_t i = 0;
  while (i + kFrameOverhead <= n) {
    if (b[i] == kSync0 && b[i + 1] == kSync1) {
      const size_t plen = (size_t)b[i + 6] | ((size_t)b[i + 7] << 8);
      if (plen <= kMaxPayload && i + frame_size(plen) <= n) {
        if (!keep_version) b[i + 2] = kProtocolVersion;
        const uint32_t crc = crc32c(b + i + 2, kFrameHeaderSize - 2 + plen);
        for (int k = 0; k < 4; k++) b[i + kFrameHeaderSize + plen + k] = (uint8_t)(crc >> (8 * k));
        i += frame_size(plen);
        continue;
      }
    }
    i++;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* input, size_t input_size) {
  static Sink sink;
  FrameReceiver* rx = receiver(&sink);
  rx->reset();
  const FrameCounters before = rx->counters();
  const uint32_t frames_before = sink.frames;

  // The whole input as a message payload of every type.
  check_messages(input_size ? input[0] : 0, input, input_size);
  if (input_size == 0) return 0;

  // First byte: mode. Bit 0: fix up CRCs (bit 1: keep foreign versions).
  static std::vector<uint8_t> stream;
  stream.assign(input + 1, input + input_size);
  if (input[0] & 1) fix_up(&stream, (input[0] & 2) != 0);
  const uint8_t* data = stream.data();
  const size_t size = stream.size();

  // Split: data from the front, one control byte per chunk from the back.
  size_t front = 0, back = size;
  uint32_t now = 0xFFFFFF00u;  // wraps during long inputs
  while (front < back) {
    const uint8_t c = data[--back];
    size_t n = (size_t)(c & 0x3F) + 1;
    if (c & 0x40) n *= 37;  // occasionally large chunks
    if (n > back - front) n = back - front;
    rx->push(data + front, n, now);
    front += n;
    FUZZ_CHECK(rx->pending() < kMaxFrameSize);
    if (c & 0x80) {
      now += (c & 0x40) ? kInterByteTimeoutMs + 1 : 7;
      rx->poll_timeout(now);
    }
  }
  now += kInterByteTimeoutMs + 1;
  rx->poll_timeout(now);
  FUZZ_CHECK(rx->pending() == 0);
  const FrameCounters& c = rx->counters();
  FUZZ_CHECK(c.frames_ok - before.frames_ok == sink.frames - frames_before);
  return 0;
}
