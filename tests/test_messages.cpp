// Link messages: byte layouts against the tables of docs/PROTOCOL.md (expected bytes are
// written out here, not produced by the encoder), round trips, and strict length checks.
#include <gtest/gtest.h>
#include <string.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "link/frame.h"
#include "link/messages.h"

using namespace llmwire;

namespace {

using Bytes = std::vector<uint8_t>;

void put(Bytes& b, size_t off, uint64_t v, int n) {
  if (b.size() < off + n) b.resize(off + n, 0);
  for (int i = 0; i < n; i++) b[off + i] = (uint8_t)(v >> (8 * i));
}

StageInfo sample_info(uint32_t i) {
  StageInfo s;
  s.protocol_version = 1;
  s.firmware_version = (uint16_t)(0x0102 + i);
  s.boot_id = 0xB0070000u + i;
  s.model_id = 0x1122334455667788ull;
  s.stage_index = i;
  s.stage_count = 3;
  s.layer_begin = 2 * i;
  s.layer_end = 2 * i + 2;
  s.dim = 288;
  s.n_layers = 6;
  s.seq_len = 256 - i;
  s.kv_type = i & 1;
  return s;
}

// StageInfo at the documented offsets.
Bytes info_bytes(const StageInfo& s) {
  Bytes b;
  put(b, 0, s.protocol_version, 2);
  put(b, 2, s.firmware_version, 2);
  put(b, 4, s.boot_id, 4);
  put(b, 8, s.model_id, 8);
  put(b, 16, s.stage_index, 4);
  put(b, 20, s.stage_count, 4);
  put(b, 24, s.layer_begin, 4);
  put(b, 28, s.layer_end, 4);
  put(b, 32, s.dim, 4);
  put(b, 36, s.n_layers, 4);
  put(b, 40, s.seq_len, 4);
  put(b, 44, s.kv_type, 4);
  return b;
}

bool same(const StageInfo& a, const StageInfo& b) {
  return a.protocol_version == b.protocol_version && a.firmware_version == b.firmware_version &&
         a.boot_id == b.boot_id && a.model_id == b.model_id && a.stage_index == b.stage_index &&
         a.stage_count == b.stage_count && a.layer_begin == b.layer_begin &&
         a.layer_end == b.layer_end && a.dim == b.dim && a.n_layers == b.n_layers &&
         a.seq_len == b.seq_len && a.kv_type == b.kv_type;
}

StageStats sample_stats(uint32_t i) {
  StageStats s;
  s.stage_index = i;
  s.boot_id = 0xDEAD0000u + i;
  s.frames_rx = 1000 + i;
  s.frames_tx = 2000 + i;
  s.crc_errors = 3 + i;
  s.resyncs = 44 + i;
  s.oversize = 5 + i;
  s.partial_timeouts = 6 + i;
  s.positions_computed = 7000 + i;
  s.need_replay_sent = 8 + i;
  s.compute_us = 0x0000000123456789ull + i;
  s.link_wait_us = 0x00000009876543210ull + i;
  s.version_mismatch = 9 + i;
  return s;
}

Bytes stats_bytes(const StageStats& s) {
  Bytes b;
  put(b, 0, s.stage_index, 4);
  put(b, 4, s.boot_id, 4);
  put(b, 8, s.frames_rx, 4);
  put(b, 12, s.frames_tx, 4);
  put(b, 16, s.crc_errors, 4);
  put(b, 20, s.resyncs, 4);
  put(b, 24, s.oversize, 4);
  put(b, 28, s.partial_timeouts, 4);
  put(b, 32, s.positions_computed, 4);
  put(b, 36, s.need_replay_sent, 4);
  put(b, 40, s.compute_us, 8);
  put(b, 48, s.link_wait_us, 8);
  put(b, 56, s.version_mismatch, 4);
  put(b, 60, s.frames_resent, 4);
  return b;
}

bool same(const StageStats& a, const StageStats& b) {
  return memcmp(stats_bytes(a).data(), stats_bytes(b).data(), 64) == 0;
}

}  // namespace

TEST(Messages, HelloLayoutAndRoundTrip) {
  StageInfo in[3] = {sample_info(0), sample_info(1), sample_info(2)};
  Bytes expected = {3, 0, 0, 0};
  for (const auto& s : in) {
    Bytes e = info_bytes(s);
    ASSERT_EQ(e.size(), 48u);
    expected.insert(expected.end(), e.begin(), e.end());
  }
  Bytes buf(kHelloMaxSize);
  const size_t n = encode_hello(in, 3, buf.data(), buf.size());
  ASSERT_EQ(n, 4u + 3 * 48);
  EXPECT_EQ(Bytes(buf.begin(), buf.begin() + n), expected);

  HelloView v;
  ASSERT_EQ(decode_hello(expected.data(), expected.size(), &v), MsgStatus::kOk);
  ASSERT_EQ(v.count, 3);
  for (int i = 0; i < 3; i++) EXPECT_TRUE(same(v.entry(i), in[i])) << i;

  EXPECT_EQ(decode_hello(expected.data(), expected.size() - 1, &v), MsgStatus::kBadLength);
  Bytes longer = expected;
  longer.push_back(0);
  EXPECT_EQ(decode_hello(longer.data(), longer.size(), &v), MsgStatus::kBadLength);
  EXPECT_EQ(decode_hello(expected.data(), 3, &v), MsgStatus::kTooShort);
  Bytes zero = {0, 0, 0, 0};
  EXPECT_EQ(decode_hello(zero.data(), zero.size(), &v), MsgStatus::kBadCount);
  Bytes too_many(4 + 65 * 48, 0);
  too_many[0] = 65;
  EXPECT_EQ(decode_hello(too_many.data(), too_many.size(), &v), MsgStatus::kBadCount);
  EXPECT_EQ(encode_hello(in, 0, buf.data(), buf.size()), 0u);
  EXPECT_EQ(encode_hello(in, 3, buf.data(), n - 1), 0u);
}

TEST(Messages, HelloAppendForwardsInPlaceUpToTheLimit) {
  Bytes buf(kHelloMaxSize);
  StageInfo head = sample_info(0);
  size_t n = encode_hello(&head, 1, buf.data(), buf.size());
  for (uint32_t i = 1; i < kMaxStages; i++) {
    n = hello_append(buf.data(), n, sample_info(i), buf.data(), buf.size());
    ASSERT_EQ(n, 4 + (i + 1) * 48);
  }
  HelloView v;
  ASSERT_EQ(decode_hello(buf.data(), n, &v), MsgStatus::kOk);
  ASSERT_EQ(v.count, kMaxStages);
  for (uint32_t i = 0; i < kMaxStages; i++) EXPECT_TRUE(same(v.entry(i), sample_info(i)));
  Bytes bigger(kHelloMaxSize + 48);
  EXPECT_EQ(hello_append(buf.data(), n, sample_info(64), bigger.data(), bigger.size()), 0u);
  // Copying append into a separate buffer; refuses a corrupt input and a small output.
  Bytes out(200);
  size_t m = encode_hello(&head, 1, buf.data(), buf.size());
  EXPECT_EQ(hello_append(buf.data(), m, sample_info(1), out.data(), out.size()), 100u);
  EXPECT_EQ(out[0], 2);
  EXPECT_EQ(hello_append(buf.data(), m - 1, sample_info(1), out.data(), out.size()), 0u);
  EXPECT_EQ(hello_append(buf.data(), m, sample_info(1), out.data(), 99), 0u);
}

TEST(Messages, ActivationLayoutAndRoundTrip) {
  ActivationHeader h;
  h.session_id = 0x01020304;
  h.pos = 0x0A0B0C0D;
  h.epoch = 0xBEEF;
  h.dest_stage = 2;
  h.flags = 0x80;
  std::vector<float> x = {
      0.0f,    -0.0f, 1.5f, -1e-40f /* subnormal */, std::numeric_limits<float>::infinity(),
      3.4e38f, -7.25f};
  Bytes expected = {0x04, 0x03, 0x02, 0x01, 0x0D, 0x0C, 0x0B, 0x0A, 0xEF, 0xBE, 0x02, 0x80};
  for (float f : x) {
    uint32_t u;
    memcpy(&u, &f, 4);
    put(expected, expected.size(), u, 4);
  }
  Bytes buf(64);
  const size_t n = encode_activation(h, x.data(), (uint32_t)x.size(), buf.data(), buf.size());
  ASSERT_EQ(n, 12 + 4 * x.size());
  EXPECT_EQ(Bytes(buf.begin(), buf.begin() + n), expected);

  // Decode from an odd address: the floats are unaligned.
  Bytes shifted(1 + expected.size());
  memcpy(shifted.data() + 1, expected.data(), expected.size());
  ActivationView v;
  ASSERT_EQ(decode_activation(shifted.data() + 1, expected.size(), &v), MsgStatus::kOk);
  EXPECT_EQ(v.h.session_id, h.session_id);
  EXPECT_EQ(v.h.pos, h.pos);
  EXPECT_EQ(v.h.epoch, h.epoch);
  EXPECT_EQ(v.h.dest_stage, h.dest_stage);
  EXPECT_EQ(v.h.flags, h.flags);
  ASSERT_EQ(v.dim, x.size());
  std::vector<float> y(v.dim, 99.0f);
  v.copy_to(y.data());
  for (size_t i = 0; i < x.size(); i++) {
    // Bit-exact (the wire is lossless), including -0 and subnormals.
    EXPECT_EQ(memcmp(&x[i], &y[i], 4), 0) << i;
    const float a = v.at((uint32_t)i);
    EXPECT_EQ(memcmp(&x[i], &a, 4), 0) << i;
  }
  // NaN payload bits survive too.
  uint32_t nan_bits = 0x7FC12345u;
  float nan;
  memcpy(&nan, &nan_bits, 4);
  ASSERT_EQ(encode_activation(h, &nan, 1, buf.data(), buf.size()), 16u);
  ASSERT_EQ(decode_activation(buf.data(), 16, &v), MsgStatus::kOk);
  float back;
  v.copy_to(&back);
  EXPECT_EQ(memcmp(&back, &nan_bits, 4), 0);
}

TEST(Messages, ActivationLengthRules) {
  Bytes p(12 + 4 * 2045 + 8, 0);
  ActivationView v;
  EXPECT_EQ(decode_activation(p.data(), 11, &v), MsgStatus::kTooShort);
  EXPECT_EQ(decode_activation(p.data(), 12, &v), MsgStatus::kBadDim);  // dim 0
  for (size_t extra : {1, 2, 3, 5, 1151}) {
    EXPECT_EQ(decode_activation(p.data(), 12 + extra, &v), MsgStatus::kBadDim) << extra;
  }
  EXPECT_EQ(decode_activation(p.data(), 16, &v), MsgStatus::kOk);
  EXPECT_EQ(v.dim, 1u);
  EXPECT_EQ(decode_activation(p.data(), 12 + 4 * 288, &v), MsgStatus::kOk);
  EXPECT_EQ(v.dim, 288u);
  EXPECT_EQ(decode_activation(p.data(), 12 + 4 * 2045, &v), MsgStatus::kOk);
  EXPECT_EQ(decode_activation(p.data(), 12 + 4 * 2046, &v), MsgStatus::kBadDim);  // > frame
  EXPECT_EQ(kMaxActivationDim, 2045u);
  EXPECT_LE(12 + 4 * kMaxActivationDim, kMaxPayload);

  std::vector<float> x(2046, 1.0f);
  Bytes buf(kMaxPayload + 64);
  ActivationHeader h;
  EXPECT_EQ(encode_activation(h, x.data(), 0, buf.data(), buf.size()), 0u);
  EXPECT_EQ(encode_activation(h, x.data(), 2046, buf.data(), buf.size()), 0u);
  EXPECT_EQ(encode_activation(h, x.data(), 2045, buf.data(), buf.size()), kMaxPayload);
  EXPECT_EQ(encode_activation(h, x.data(), 512, buf.data(), 12 + 2047), 0u);
  EXPECT_EQ(activation_size(288), 1164u);
  EXPECT_EQ(activation_size(512), 2060u);
}

TEST(Messages, NeedReplayLayoutAndRoundTrip) {
  NeedReplay m;
  m.session_id = 0x11223344;
  m.pos = 300;
  m.have = 0x01000002;
  m.epoch = 0x0506;
  m.stage_index = 2;
  m.reason = (uint8_t)ReplayReason::kUnknownSession;
  const Bytes expected = {0x44, 0x33, 0x22, 0x11, 0x2C, 0x01, 0x00, 0x00,
                          0x02, 0x00, 0x00, 0x01, 0x06, 0x05, 0x02, 0x01};
  Bytes buf(32);
  ASSERT_EQ(encode_need_replay(m, buf.data(), buf.size()), 16u);
  EXPECT_EQ(Bytes(buf.begin(), buf.begin() + 16), expected);
  NeedReplay d;
  ASSERT_EQ(decode_need_replay(expected.data(), 16, &d), MsgStatus::kOk);
  EXPECT_EQ(d.session_id, m.session_id);
  EXPECT_EQ(d.pos, m.pos);
  EXPECT_EQ(d.have, m.have);
  EXPECT_EQ(d.epoch, m.epoch);
  EXPECT_EQ(d.stage_index, m.stage_index);
  EXPECT_EQ(d.reason, m.reason);
  EXPECT_EQ(decode_need_replay(expected.data(), 15, &d), MsgStatus::kTooShort);
  Bytes longer = expected;
  longer.push_back(0);
  EXPECT_EQ(decode_need_replay(longer.data(), 17, &d), MsgStatus::kBadLength);
  Bytes bad_reason = expected;
  bad_reason[15] = 2;
  EXPECT_EQ(decode_need_replay(bad_reason.data(), 16, &d), MsgStatus::kBadValue);
  EXPECT_EQ(encode_need_replay(m, buf.data(), 15), 0u);
}

TEST(Messages, ResetAndStatsRequest) {
  Bytes buf(8);
  ASSERT_EQ(encode_reset(0xCAFEF00D, buf.data(), buf.size()), 4u);
  EXPECT_EQ(Bytes(buf.begin(), buf.begin() + 4), (Bytes{0x0D, 0xF0, 0xFE, 0xCA}));
  uint32_t v = 0;
  ASSERT_EQ(decode_reset(buf.data(), 4, &v), MsgStatus::kOk);
  EXPECT_EQ(v, 0xCAFEF00Du);
  EXPECT_EQ(decode_reset(buf.data(), 3, &v), MsgStatus::kTooShort);
  EXPECT_EQ(decode_reset(buf.data(), 5, &v), MsgStatus::kBadLength);

  ASSERT_EQ(encode_stats_request(42, buf.data(), buf.size()), 4u);
  EXPECT_EQ(Bytes(buf.begin(), buf.begin() + 4), (Bytes{42, 0, 0, 0}));
  ASSERT_EQ(decode_stats_request(buf.data(), 4, &v), MsgStatus::kOk);
  EXPECT_EQ(v, 42u);
  EXPECT_EQ(decode_stats_request(buf.data(), 0, &v), MsgStatus::kTooShort);
  EXPECT_EQ(decode_stats_request(buf.data(), 8, &v), MsgStatus::kBadLength);
  EXPECT_EQ(encode_stats_request(1, buf.data(), 3), 0u);
}

TEST(Messages, StatsLayoutRoundTripAndAppend) {
  StageStats in[2] = {sample_stats(0), sample_stats(1)};
  Bytes expected;
  put(expected, 0, 0x01020304, 4);
  expected.insert(expected.end(), {2, 0, 0, 0});
  for (const auto& s : in) {
    Bytes e = stats_bytes(s);
    ASSERT_EQ(e.size(), 64u);
    expected.insert(expected.end(), e.begin(), e.end());
  }
  Bytes buf(kStatsMaxSize);
  size_t n = encode_stats(0x01020304, in, 2, buf.data(), buf.size());
  ASSERT_EQ(n, 8u + 128);
  EXPECT_EQ(Bytes(buf.begin(), buf.begin() + n), expected);
  StatsView v;
  ASSERT_EQ(decode_stats(expected.data(), expected.size(), &v), MsgStatus::kOk);
  EXPECT_EQ(v.request_id, 0x01020304u);
  ASSERT_EQ(v.count, 2);
  EXPECT_TRUE(same(v.entry(0), in[0]));
  EXPECT_TRUE(same(v.entry(1), in[1]));
  EXPECT_EQ(decode_stats(expected.data(), expected.size() - 1, &v), MsgStatus::kBadLength);
  EXPECT_EQ(decode_stats(expected.data(), 7, &v), MsgStatus::kTooShort);

  // A round may start empty; each stage appends in place.
  n = encode_stats(7, nullptr, 0, buf.data(), buf.size());
  ASSERT_EQ(n, 8u);
  ASSERT_EQ(decode_stats(buf.data(), n, &v), MsgStatus::kOk);
  EXPECT_EQ(v.count, 0);
  for (uint32_t i = 0; i < kMaxStages; i++) {
    n = stats_append(buf.data(), n, sample_stats(i), buf.data(), buf.size());
    ASSERT_EQ(n, 8 + 64 * (i + 1));
  }
  ASSERT_EQ(decode_stats(buf.data(), n, &v), MsgStatus::kOk);
  ASSERT_EQ(v.count, 64);
  EXPECT_EQ(v.request_id, 7u);
  for (uint32_t i = 0; i < kMaxStages; i++) EXPECT_TRUE(same(v.entry(i), sample_stats(i)));
  Bytes bigger(kStatsMaxSize + 64);
  EXPECT_EQ(stats_append(buf.data(), n, sample_stats(1), bigger.data(), bigger.size()), 0u);
  Bytes too_many(8 + 65 * 64, 0);
  too_many[4] = 65;
  EXPECT_EQ(decode_stats(too_many.data(), too_many.size(), &v), MsgStatus::kBadCount);
}

TEST(Messages, ErrorLayoutRoundTripAndLimits) {
  const std::string text = "model id 1122334455667788 != 99";
  Bytes buf(300);
  const size_t n = encode_error(1, (uint8_t)ErrorCode::kWrongModel, text.data(), text.size(),
                                buf.data(), buf.size());
  ASSERT_EQ(n, 4 + text.size());
  Bytes expected(4 + text.size());
  expected[0] = 1;  // stage_index
  expected[1] = 1;  // code: wrong model
  expected[2] = (uint8_t)text.size();
  expected[3] = 0;
  std::copy(text.begin(), text.end(), expected.begin() + 4);
  EXPECT_EQ(Bytes(buf.begin(), buf.begin() + n), expected);
  ErrorMsg e;
  ASSERT_EQ(decode_error(expected.data(), expected.size(), &e), MsgStatus::kOk);
  EXPECT_EQ(e.stage_index, 1);
  EXPECT_EQ(e.code, 1);
  EXPECT_EQ(std::string(e.text, e.text_len), text);
  EXPECT_STREQ(error_code_name(e.code), "wrong model");
  EXPECT_STREQ(error_code_name(0), "unknown error");
  EXPECT_EQ(decode_error(expected.data(), expected.size() - 1, &e), MsgStatus::kBadLength);
  EXPECT_EQ(decode_error(expected.data(), 3, &e), MsgStatus::kTooShort);

  // Empty text; over-long text is truncated by the encoder and refused by the decoder.
  ASSERT_EQ(encode_error(0, 6, nullptr, 0, buf.data(), buf.size()), 4u);
  ASSERT_EQ(decode_error(buf.data(), 4, &e), MsgStatus::kOk);
  EXPECT_EQ(e.text_len, 0);
  const std::string long_text(250, 'x');
  ASSERT_EQ(encode_error(0, 6, long_text.data(), long_text.size(), buf.data(), buf.size()), 204u);
  ASSERT_EQ(decode_error(buf.data(), 204, &e), MsgStatus::kOk);
  EXPECT_EQ(e.text_len, 200);
  Bytes raw(4 + 201, 'y');
  raw[0] = 0;
  raw[1] = 5;
  raw[2] = 201;
  raw[3] = 0;
  EXPECT_EQ(decode_error(raw.data(), raw.size(), &e), MsgStatus::kTextTooLong);
  EXPECT_EQ(encode_error(0, 6, text.data(), text.size(), buf.data(), 4 + text.size() - 1), 0u);
}

TEST(Messages, ValidateDispatchesOnTypeAndNamesAreDefined) {
  const Bytes four = {1, 2, 3, 4};
  EXPECT_EQ(validate_message((uint8_t)MsgType::kReset, four.data(), 4), MsgStatus::kOk);
  EXPECT_EQ(validate_message((uint8_t)MsgType::kStatsRequest, four.data(), 4), MsgStatus::kOk);
  EXPECT_EQ(validate_message((uint8_t)MsgType::kActivation, four.data(), 4), MsgStatus::kTooShort);
  EXPECT_EQ(validate_message(0, four.data(), 4), MsgStatus::kBadValue);
  EXPECT_EQ(validate_message(12, four.data(), 4), MsgStatus::kBadValue);
  EXPECT_EQ(validate_message(11, four.data(), 4), MsgStatus::kTooShort);  // ACTIVATION_BATCH
  EXPECT_EQ(validate_message(19, four.data(), 4), MsgStatus::kTooShort);  // SAMPLE_CHAIN
  EXPECT_EQ(validate_message(22, four.data(), 4), MsgStatus::kBadValue);
  EXPECT_STREQ(msg_type_name(19), "SAMPLE_CHAIN");
  EXPECT_STREQ(msg_type_name(20), "SAMPLE_TOP");
  EXPECT_STREQ(msg_type_name(21), "SAMPLE_CANDS");
  EXPECT_EQ(validate_message((uint8_t)MsgType::kClassSlice, four.data(), 4), MsgStatus::kTooShort);
  EXPECT_STREQ(msg_type_name(16), "CLASSIFY");
  EXPECT_STREQ(msg_type_name(17), "CLASS_LOGITS");
  EXPECT_STREQ(msg_type_name(18), "CLASS_SLICE");
  EXPECT_STREQ(msg_type_name(2), "ACTIVATION");
  EXPECT_STREQ(msg_type_name(11), "ACTIVATION_BATCH");
  EXPECT_STREQ(msg_type_name(12), "UNKNOWN");
  EXPECT_STREQ(msg_type_name(200), "UNKNOWN");
  EXPECT_STRNE(msg_status_name(MsgStatus::kBadDim), "unknown");
}

// Random payloads of every length up to a few hundred bytes through every decoder: decoders
// accept exactly the lengths their layout allows, and never read past the end (ASan build).
TEST(Messages, DecodersAcceptExactlyTheValidLengths) {
  uint64_t s = 12345;
  auto next = [&]() {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return (uint8_t)(s >> 56);
  };
  for (size_t len = 0; len < 600; len++) {
    std::vector<uint8_t> heap(len);  // exact-size allocation: overreads trip ASan
    for (auto& b : heap) b = next();
    const uint8_t* p = len ? heap.data() : reinterpret_cast<const uint8_t*>("");
    HelloView hv;
    if (decode_hello(p, len, &hv) == MsgStatus::kOk) {
      EXPECT_EQ(len, 4u + 48u * hv.count);
      EXPECT_GE(hv.count, 1);
    }
    ActivationView av;
    EXPECT_EQ(decode_activation(p, len, &av) == MsgStatus::kOk, len > 12 && (len - 12) % 4 == 0);
    NeedReplay nr;
    if (decode_need_replay(p, len, &nr) == MsgStatus::kOk) {
      EXPECT_EQ(len, 16u);
    }
    uint32_t u;
    EXPECT_EQ(decode_reset(p, len, &u) == MsgStatus::kOk, len == 4);
    StatsView sv;
    if (decode_stats(p, len, &sv) == MsgStatus::kOk) {
      EXPECT_EQ(len, 8u + 64u * sv.count);
    }
    ClassifyView cv;
    if (decode_classify(p, len, &cv) == MsgStatus::kOk) {
      EXPECT_TRUE(len > 12 && (len - 12) % 4 == 0);
      EXPECT_LE(cv.h.mode, 1);
    }
    ClassLogitsView lv;
    if (decode_class_logits(p, len, &lv) == MsgStatus::kOk) {
      EXPECT_TRUE(len > 16 && (len - 16) % 4 == 0);
    }
    ClassSlice cs;
    if (decode_class_slice(p, len, &cs) == MsgStatus::kOk) {
      EXPECT_EQ(len, 28u);
    }
    ActivationBatchView bv;
    if (decode_activation_batch(p, len, &bv) == MsgStatus::kOk) {
      EXPECT_EQ(len, 16u + 4u * bv.count * bv.dim);
      EXPECT_GE(bv.count, 1u);
      EXPECT_GE(bv.dim, 1u);
    }
    SampleChain sc;
    if (decode_sample_chain(p, len, &sc) == MsgStatus::kOk) {
      EXPECT_EQ(len, 36u);
    }
    SampleTop st;
    if (decode_sample_top(p, len, &st) == MsgStatus::kOk) {
      EXPECT_EQ(len, 36u);
    }
    SampleCandsView cands;
    if (decode_sample_cands(p, len, &cands) == MsgStatus::kOk) {
      EXPECT_EQ(len, 32u + 8u * cands.h.count);
    }
    ErrorMsg em;
    if (decode_error(p, len, &em) == MsgStatus::kOk) {
      EXPECT_EQ(len, 4u + em.text_len);
      EXPECT_LE(em.text_len, 200);
    }
  }
}

// The worked examples of docs/PROTOCOL.md "Classifier split", byte for byte.
TEST(Messages, ClassifyLayoutAndRules) {
  ClassifyHeader h;
  h.session_id = 0x00010002;
  h.pos = 5;
  h.mode = (uint8_t)ClassifyMode::kLogits;
  const float xn[2] = {1.0f, -2.0f};
  const Bytes expected = {0x02, 0x00, 0x01, 0x00, 0x05, 0x00, 0x00, 0x00, 0x01, 0x00,
                          0x00, 0x00, 0x00, 0x00, 0x80, 0x3F, 0x00, 0x00, 0x00, 0xC0};
  Bytes buf(64);
  ASSERT_EQ(encode_classify(h, xn, 2, buf.data(), buf.size()), expected.size());
  EXPECT_EQ(Bytes(buf.begin(), buf.begin() + expected.size()), expected);
  ClassifyView v;
  ASSERT_EQ(decode_classify(expected.data(), expected.size(), &v), MsgStatus::kOk);
  EXPECT_EQ(v.h.session_id, h.session_id);
  EXPECT_EQ(v.h.pos, 5u);
  EXPECT_EQ(v.h.mode, 1);
  ASSERT_EQ(v.dim, 2u);
  float back[2];
  load_f32_array(v.data, 2, back);
  EXPECT_EQ(memcmp(back, xn, 8), 0);
  Bytes bad = expected;
  bad[8] = 2;  // unknown mode
  EXPECT_EQ(decode_classify(bad.data(), bad.size(), &v), MsgStatus::kBadValue);
  bad = expected;
  bad[10] = 1;  // reserved: ignored
  EXPECT_EQ(decode_classify(bad.data(), bad.size(), &v), MsgStatus::kOk);
  EXPECT_EQ(decode_classify(expected.data(), 12, &v), MsgStatus::kBadDim);
  EXPECT_EQ(decode_classify(expected.data(), 11, &v), MsgStatus::kTooShort);
  EXPECT_EQ(decode_classify(expected.data(), 18, &v), MsgStatus::kBadDim);
  h.mode = 2;
  EXPECT_EQ(encode_classify(h, xn, 2, buf.data(), buf.size()), 0u);
}

TEST(Messages, ClassLogitsLayoutAndRules) {
  ClassLogitsHeader h;
  h.session_id = 0x00010002;
  h.pos = 5;
  h.first_row = 256;
  h.stage = 1;
  const float v[2] = {0.5f, -0.25f};
  const Bytes expected = {0x02, 0x00, 0x01, 0x00, 0x05, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00,
                          0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x3F, 0x00, 0x00, 0x80, 0xBE};
  Bytes buf(64);
  ASSERT_EQ(encode_class_logits(h, v, 2, buf.data(), buf.size()), expected.size());
  EXPECT_EQ(Bytes(buf.begin(), buf.begin() + expected.size()), expected);
  ClassLogitsView lv;
  ASSERT_EQ(decode_class_logits(expected.data(), expected.size(), &lv), MsgStatus::kOk);
  EXPECT_EQ(lv.h.first_row, 256u);
  EXPECT_EQ(lv.h.stage, 1);
  EXPECT_EQ(lv.count, 2u);
  EXPECT_EQ(decode_class_logits(expected.data(), 16, &lv), MsgStatus::kBadDim);
  EXPECT_EQ(decode_class_logits(expected.data(), 17, &lv), MsgStatus::kBadDim);
  Bytes bad = expected;
  bad[15] = 1;  // reserved: ignored
  EXPECT_EQ(decode_class_logits(bad.data(), bad.size(), &lv), MsgStatus::kOk);
  bad = expected;
  bad[8] = bad[9] = bad[10] = bad[11] = 0xFF;  // rows past 2^32
  EXPECT_EQ(decode_class_logits(bad.data(), bad.size(), &lv), MsgStatus::kBadValue);
  // A payload no frame can carry is refused, as the encoder refuses to write it (found by
  // fuzz_frame: 8,204 bytes decoded, then failed to re-encode).
  Bytes longest(kMaxPayload, 0), too_long(kMaxPayload + 4, 0);
  EXPECT_EQ(decode_class_logits(longest.data(), longest.size(), &lv), MsgStatus::kOk);
  EXPECT_EQ(decode_class_logits(too_long.data(), too_long.size(), &lv), MsgStatus::kBadDim);
  // Never longer than an ACTIVATION of the same model.
  EXPECT_EQ(class_logits_max_count(64), 63u);
  EXPECT_EQ(class_logits_max_count(288), 287u);
  EXPECT_LE(kClassLogitsHeaderSize + 4 * class_logits_max_count(288), activation_size(288));
}

TEST(Messages, ClassSliceLayoutAndRules) {
  ClassSlice m;
  m.session_id = 0x00010002;
  m.pos = 5;
  m.row_begin = 256;
  m.row_end = 512;
  m.stage = 1;
  m.flags = kSliceHasMax;
  m.max = 3.5f;
  m.argmax = 300;
  const Bytes expected = {0x02, 0x00, 0x01, 0x00, 0x05, 0x00, 0x00, 0x00, 0x00, 0x01,
                          0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x01, 0x01, 0x00, 0x00,
                          0x00, 0x00, 0x60, 0x40, 0x2C, 0x01, 0x00, 0x00};
  Bytes buf(64);
  ASSERT_EQ(encode_class_slice(m, buf.data(), buf.size()), 28u);
  EXPECT_EQ(Bytes(buf.begin(), buf.begin() + 28), expected);
  ClassSlice d;
  ASSERT_EQ(decode_class_slice(expected.data(), 28, &d), MsgStatus::kOk);
  EXPECT_EQ(d.row_begin, 256u);
  EXPECT_EQ(d.row_end, 512u);
  EXPECT_EQ(d.max, 3.5f);
  EXPECT_EQ(d.argmax, 300u);
  EXPECT_EQ(decode_class_slice(expected.data(), 27, &d), MsgStatus::kTooShort);
  EXPECT_EQ(decode_class_slice(buf.data(), 29, &d), MsgStatus::kBadLength);
  auto broken = [&](size_t off, uint8_t v) {
    Bytes b = expected;
    b[off] = v;
    return decode_class_slice(b.data(), b.size(), &d);
  };
  EXPECT_EQ(broken(25, 0x02), MsgStatus::kBadValue);  // argmax 556 outside the rows
  EXPECT_EQ(broken(17, 0x04), MsgStatus::kBadValue);  // unknown flag
  EXPECT_EQ(broken(17, 0x00), MsgStatus::kBadValue);  // max set without kSliceHasMax
  EXPECT_EQ(broken(18, 0x01), MsgStatus::kOk);        // reserved: ignored
  EXPECT_EQ(broken(13, 0x00), MsgStatus::kBadValue);  // row_end < row_begin
  // An empty slice: no max.
  ClassSlice e;
  e.stage = 2;
  ASSERT_EQ(encode_class_slice(e, buf.data(), buf.size()), 28u);
  EXPECT_EQ(decode_class_slice(buf.data(), 28, &d), MsgStatus::kOk);
  e.argmax = 1;
  EXPECT_EQ(encode_class_slice(e, buf.data(), buf.size()), 0u);
}

// ACTIVATION_BATCH (type 11): the worked example of docs/PROTOCOL.md byte for byte (written out
// here, its CRC computed in Python), and a CRC recomputed bit by bit.
TEST(Messages, ActivationBatchWorkedExample) {
  const Bytes expect = {0xA5, 0x5A, 0x01, 0x0B, 0x21, 0x00, 0x20, 0x00, 0x01, 0x00, 0x00,
                        0x00, 0x08, 0x00, 0x00, 0x00, 0x02, 0x00, 0x01, 0x00, 0x02, 0x00,
                        0x02, 0x00, 0x00, 0x00, 0x80, 0x3F, 0x00, 0x00, 0x00, 0xC0, 0x00,
                        0x00, 0x00, 0x3F, 0x00, 0x00, 0x50, 0x40, 0x8D, 0xEE, 0x17, 0x13};
  ActivationHeader h;
  h.session_id = 1;
  h.pos = 8;
  h.epoch = 2;
  h.dest_stage = 1;
  const float x[4] = {1.0f, -2.0f, 0.5f, 3.25f};
  uint8_t payload[64];
  const size_t n = encode_activation_batch(h, x, 2, 2, payload, sizeof payload);
  ASSERT_EQ(n, 32u);
  uint8_t frame[64];
  ASSERT_EQ(encode_frame((uint8_t)MsgType::kActivationBatch, 0x21, payload, n, frame, sizeof frame),
            expect.size());
  EXPECT_EQ(Bytes(frame, frame + expect.size()), expect);
  uint32_t crc = 0xFFFFFFFFu;  // bitwise CRC-32C over version .. payload
  for (size_t i = 2; i < expect.size() - 4; i++) {
    crc ^= expect[i];
    for (int b = 0; b < 8; b++) crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
  }
  EXPECT_EQ(crc ^ 0xFFFFFFFFu, 0x1317EE8Du);
  ActivationBatchView v;
  ASSERT_EQ(decode_activation_batch(payload, n, &v), MsgStatus::kOk);
  EXPECT_EQ(v.h.session_id, 1u);
  EXPECT_EQ(v.h.pos, 8u);
  EXPECT_EQ(v.h.epoch, 2u);
  EXPECT_EQ(v.h.dest_stage, 1u);
  EXPECT_EQ(v.count, 2u);
  EXPECT_EQ(v.dim, 2u);
  float y[2];
  v.copy_to(1, 1, y);  // the second position's vector
  EXPECT_EQ(y[0], 0.5f);
  EXPECT_EQ(y[1], 3.25f);
}

TEST(Messages, ActivationBatchLengthRulesAndLimits) {
  // One frame holds floor(2044 / dim) positions.
  EXPECT_EQ(activation_batch_max_count(64), 31u);
  EXPECT_EQ(activation_batch_max_count(288), 7u);
  EXPECT_EQ(activation_batch_max_count(512), 3u);
  EXPECT_EQ(activation_batch_max_count(2044), 1u);
  EXPECT_EQ(activation_batch_max_count(2045), 0u);
  EXPECT_EQ(activation_batch_max_count(0), 0u);
  EXPECT_EQ(activation_batch_size(31, 64), 16u + 31 * 64 * 4);
  EXPECT_EQ(activation_batch_size(32, 64), 0u);  // 8,208 bytes: no frame carries it
  EXPECT_EQ(activation_batch_size(0, 64), 0u);
  EXPECT_LE(activation_batch_size(7, 288), kMaxPayload);
  std::vector<float> x(32 * 64, 1.0f);
  std::vector<uint8_t> buf(kMaxPayload + 64);
  ActivationHeader h;
  EXPECT_EQ(encode_activation_batch(h, x.data(), 32, 64, buf.data(), buf.size()), 0u);
  EXPECT_EQ(encode_activation_batch(h, x.data(), 31, 64, buf.data(), 100), 0u);  // cap
  h.pos = 0xFFFFFFFFu;  // pos + count would wrap
  EXPECT_EQ(encode_activation_batch(h, x.data(), 2, 64, buf.data(), buf.size()), 0u);
  h.pos = 0;
  const size_t n = encode_activation_batch(h, x.data(), 31, 64, buf.data(), buf.size());
  ASSERT_EQ(n, 7952u);
  ActivationBatchView v;
  EXPECT_EQ(decode_activation_batch(buf.data(), n, &v), MsgStatus::kOk);
  EXPECT_EQ(decode_activation_batch(buf.data(), n - 4, &v), MsgStatus::kBadLength);
  EXPECT_EQ(decode_activation_batch(buf.data(), n + 4, &v), MsgStatus::kBadLength);
  EXPECT_EQ(decode_activation_batch(buf.data(), 15, &v), MsgStatus::kTooShort);
  Bytes p(buf.begin(), buf.begin() + n);
  put(p, 12, 0, 2);  // count 0
  EXPECT_EQ(decode_activation_batch(p.data(), p.size(), &v), MsgStatus::kBadCount);
  put(p, 12, 31, 2);
  put(p, 14, 0, 2);  // dim 0
  EXPECT_EQ(decode_activation_batch(p.data(), p.size(), &v), MsgStatus::kBadDim);
  put(p, 14, 62, 2);  // 31 x 62 floats: the length no longer matches
  EXPECT_EQ(decode_activation_batch(p.data(), p.size(), &v), MsgStatus::kBadLength);
  put(p, 14, 64, 2);
  put(p, 4, 0xFFFFFFF0u, 4);  // positions past 2^32
  EXPECT_EQ(decode_activation_batch(p.data(), p.size(), &v), MsgStatus::kBadValue);
  EXPECT_EQ(validate_message((uint8_t)MsgType::kActivationBatch, p.data(), p.size()),
            MsgStatus::kBadValue);
  // A payload longer than any frame is refused even when its fields agree with it.
  Bytes big(16 + 4 * 2048, 0);
  put(big, 12, 2048, 2);
  put(big, 14, 1, 2);
  EXPECT_EQ(decode_activation_batch(big.data(), big.size(), &v), MsgStatus::kBadLength);
}

namespace {

// A frame's bytes from the encoders, and the CRC recomputed bitwise (CRC-32C over version ..
// payload).
Bytes framed(MsgType type, uint16_t seq, const uint8_t* payload, size_t n) {
  uint8_t frame[256];
  const size_t len = encode_frame((uint8_t)type, seq, payload, n, frame, sizeof frame);
  return Bytes(frame, frame + len);
}

uint32_t bitwise_crc(const Bytes& f) {
  uint32_t crc = 0xFFFFFFFFu;
  for (size_t i = 2; i < f.size() - 4; i++) {
    crc ^= f[i];
    for (int b = 0; b < 8; b++) crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
  }
  return crc ^ 0xFFFFFFFFu;
}

Bytes hex(const char* s) {
  Bytes b;
  unsigned v;
  int n = 0;
  while (std::sscanf(s, "%x%n", &v, &n) == 1) {
    b.push_back((uint8_t)v);
    s += n;
  }
  return b;
}

}  // namespace

// docs/PROTOCOL.md "Worked example: sampled rounds", byte for byte from the encoders.
TEST(Messages, SampleMessagesWorkedExamples) {
  uint8_t p[128];
  SampleChain c;
  c.session_id = 0x00010002;
  c.pos = 5;
  c.temperature = 0.8f;
  c.max = 2.5f;
  c.sum = 1.5f;
  ASSERT_EQ(encode_sample_chain(c, p, sizeof p), 36u);
  Bytes f = framed(MsgType::kSampleChain, 6, p, 36);
  EXPECT_EQ(f, hex("A5 5A 01 13 06 00 24 00 02 00 01 00 05 00 00 00 00 00 00 00 CD CC 4C 3F 00 00 "
                   "20 40 00 00 C0 3F 00 00 00 00 00 00 00 00 00 00 00 00 23 BA 81 2D"));
  EXPECT_EQ(bitwise_crc(f), 0x2D81BA23u);
  c.mode = (uint8_t)ChainMode::kCdf;
  c.flags = kChainFound;
  c.sum = 4.0f;
  c.cdf = 0.5f;
  c.coin = 0.375f;
  c.row = 300;
  ASSERT_EQ(encode_sample_chain(c, p, sizeof p), 36u);
  f = framed(MsgType::kSampleChain, 9, p, 36);
  EXPECT_EQ(bitwise_crc(f), 0xA0B969B8u);
  EXPECT_EQ(f, hex("A5 5A 01 13 09 00 24 00 02 00 01 00 05 00 00 00 01 01 00 00 CD CC 4C 3F 00 00 "
                   "20 40 00 00 80 40 00 00 00 3F 00 00 C0 3E 2C 01 00 00 B8 69 B9 A0"));
  SampleChain d;
  ASSERT_EQ(decode_sample_chain(p, 36, &d), MsgStatus::kOk);
  EXPECT_EQ(d.row, 300u);
  EXPECT_EQ(d.coin, 0.375f);

  SampleTop t;
  t.session_id = 0x00010002;
  t.pos = 5;
  t.count = 32;
  t.temperature = 0.8f;
  t.max = 2.5f;
  t.sum = 4.0f;
  t.cutoff = 0.25f;
  ASSERT_EQ(encode_sample_top(t, p, sizeof p), 36u);
  f = framed(MsgType::kSampleTop, 7, p, 36);
  EXPECT_EQ(bitwise_crc(f), 0x4F224910u);
  EXPECT_EQ(f, hex("A5 5A 01 14 07 00 24 00 02 00 01 00 05 00 00 00 00 00 20 00 CD CC 4C 3F 00 00 "
                   "20 40 00 00 80 40 00 00 80 3E 00 00 00 00 00 00 00 00 10 49 22 4F"));
  t.stage = 1;
  t.flags = kTopAfter;
  t.count = 2;
  t.after_index = 300;
  t.after_prob = 0.125f;
  ASSERT_EQ(encode_sample_top(t, p, sizeof p), 36u);
  f = framed(MsgType::kSampleTop, 8, p, 36);
  EXPECT_EQ(bitwise_crc(f), 0x3D965472u);

  SampleCandsHeader h;
  h.session_id = 0x00010002;
  h.pos = 5;
  h.stage = 1;
  h.flags = kTopAfter | kCandsHasMax;
  h.count = 2;
  h.n0 = 5;
  h.after_index = 300;
  h.after_prob = 0.125f;
  h.pmax = 0.5f;
  h.pargmax = 290;
  const ProbIndex cands[2] = {{0.125f, 301}, {0.0625f, 260}};
  ASSERT_EQ(encode_sample_cands(h, cands, p, sizeof p), 48u);
  f = framed(MsgType::kSampleCands, 4, p, 48);
  EXPECT_EQ(bitwise_crc(f), 0xF771545Bu);
  EXPECT_EQ(f, hex("A5 5A 01 15 04 00 30 00 02 00 01 00 05 00 00 00 01 03 02 00 05 00 00 00 2C 01 "
                   "00 00 00 00 00 3E 00 00 00 3F 22 01 00 00 2D 01 00 00 00 00 00 3E 04 01 00 00 "
                   "00 00 80 3D 5B 54 71 F7"));
  SampleCandsView v;
  ASSERT_EQ(decode_sample_cands(p, 48, &v), MsgStatus::kOk);
  EXPECT_EQ(sample_cand_at(v, 1).index, 260u);
}

// What a receiver refuses: wrong lengths, invalid fields, candidates out of order.
TEST(Messages, SampleMessagesRules) {
  uint8_t p[128];
  SampleChain c;
  c.temperature = 1.0f;
  ASSERT_EQ(encode_sample_chain(c, p, sizeof p), 36u);
  SampleChain d;
  EXPECT_EQ(decode_sample_chain(p, 35, &d), MsgStatus::kTooShort);
  EXPECT_EQ(decode_sample_chain(p, 37, &d), MsgStatus::kBadLength);
  auto chain_with = [&](size_t at, uint8_t byte) {
    uint8_t q[36];
    memcpy(q, p, 36);
    q[at] = byte;
    return decode_sample_chain(q, 36, &d);
  };
  EXPECT_EQ(chain_with(8, 2), MsgStatus::kOk);            // PREPARE
  EXPECT_EQ(chain_with(8, 3), MsgStatus::kBadValue);      // mode
  EXPECT_EQ(chain_with(9, 1), MsgStatus::kBadValue);      // FOUND in SUM mode
  EXPECT_EQ(chain_with(10, 7), MsgStatus::kOk);           // reserved: ignored
  EXPECT_EQ(chain_with(15, 0xBF), MsgStatus::kBadValue);  // temperature -1
  EXPECT_EQ(chain_with(15, 0x7F), MsgStatus::kBadValue);  // temperature +inf
  EXPECT_EQ(chain_with(31, 0x3F), MsgStatus::kBadValue);  // a coin in SUM mode
  EXPECT_EQ(chain_with(32, 1), MsgStatus::kBadValue);     // a row without FOUND
  c.mode = (uint8_t)ChainMode::kCdf;
  c.coin = 1.0f;
  EXPECT_EQ(encode_sample_chain(c, p, sizeof p), 0u);  // the coin is in [0, 1)

  SampleTop t;
  t.count = 0;
  EXPECT_EQ(encode_sample_top(t, p, sizeof p), 0u);
  t.count = 1;
  t.after_index = 3;  // a boundary without AFTER
  EXPECT_EQ(encode_sample_top(t, p, sizeof p), 0u);
  t.flags = kTopAfter;
  ASSERT_EQ(encode_sample_top(t, p, sizeof p), 36u);
  SampleTop u;
  p[9] = 3;
  EXPECT_EQ(decode_sample_top(p, 36, &u), MsgStatus::kBadValue);

  SampleCandsHeader h;
  h.count = 2;
  h.n0 = 2;
  const ProbIndex good[2] = {{0.5f, 7}, {0.5f, 9}};  // equal probabilities: rows ascending
  const ProbIndex bad[2] = {{0.5f, 9}, {0.5f, 7}};
  EXPECT_EQ(encode_sample_cands(h, good, p, sizeof p), 48u);
  SampleCandsView v;
  EXPECT_EQ(decode_sample_cands(p, 48, &v), MsgStatus::kOk);
  EXPECT_EQ(decode_sample_cands(p, 47, &v), MsgStatus::kBadLength);
  EXPECT_EQ(decode_sample_cands(p, 56, &v), MsgStatus::kBadLength);
  EXPECT_EQ(encode_sample_cands(h, bad, p, sizeof p), 0u);
  h.flags = kTopAfter;  // the first candidate must come after the boundary
  h.after_prob = 0.5f;
  h.after_index = 8;
  EXPECT_EQ(encode_sample_cands(h, good, p, sizeof p), 0u);
  h.after_index = 5;
  EXPECT_EQ(encode_sample_cands(h, good, p, sizeof p), 48u);
  h.n0 = 1;  // more candidates than the slice has
  EXPECT_EQ(encode_sample_cands(h, good, p, sizeof p), 0u);
  h.n0 = 2;
  h.pmax = 0.5f;  // a max without HAS_MAX
  EXPECT_EQ(encode_sample_cands(h, good, p, sizeof p), 0u);
  EXPECT_EQ(sample_cands_max_count(64), 29u);
  EXPECT_EQ(sample_cands_max_count(288), 141u);
}
