// Tokenizer: llama2.c-compatible encode/decode, lookup, and the tokenizer.bin parser/writer.
// Expected ids come from outside the code under test: hand-computed merges over a tiny
// vocabulary, Meta's published Llama 2 encodings (as used by llama2.c's test.c), ids found by
// scanning the raw file in the test, and a naive reference encoder written from run.c's rules.
#include <gtest/gtest.h>
#include <string.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/tokenizer.h"
#include "test_util.h"
#include "tools/tokenizer_file.h"

namespace llmwire {
namespace {

// ---------------------------------------------------------------------------------------
// Helpers independent of the code under test.

struct RawVocab {
  std::vector<std::string> pieces;
  std::vector<float> scores;
  std::map<std::string, int32_t> first_id;  // lowest id of each piece
  uint32_t header_max = 0;
};

// Reads every entry of a tokenizer.bin with plain memcpy (no vocab size needed).
RawVocab read_raw(const std::vector<uint8_t>& d) {
  RawVocab v;
  size_t p = 0;
  memcpy(&v.header_max, d.data(), 4);
  p = 4;
  while (p + 8 <= d.size()) {
    float s;
    int32_t n;
    memcpy(&s, d.data() + p, 4);
    memcpy(&n, d.data() + p + 4, 4);
    p += 8;
    v.scores.push_back(s);
    v.pieces.emplace_back(reinterpret_cast<const char*>(d.data() + p), (size_t)n);
    p += (size_t)n;
  }
  for (size_t i = 0; i < v.pieces.size(); i++) v.first_id.emplace(v.pieces[i], (int32_t)i);
  return v;
}

// First id whose piece is exactly s, by linear scan; -1 if none.
int32_t find_piece(const RawVocab& v, const std::string& s) {
  for (size_t i = 0; i < v.pieces.size(); i++) {
    if (v.pieces[i] == s) return (int32_t)i;
  }
  return -1;
}

// run.c's encode, written plainly with std::map and std::string (BOS 1, EOS 2).
std::vector<int32_t> reference_encode(const RawVocab& v, const std::string& text, bool bos,
                                      bool eos) {
  auto find = [&](const std::string& s) {
    auto it = v.first_id.find(s);
    return it == v.first_id.end() ? -1 : it->second;
  };
  const int32_t vocab = (int32_t)v.pieces.size();
  std::vector<int32_t> t;
  if (bos) t.push_back(1);
  if (!text.empty()) t.push_back(find(" "));
  size_t i = 0;
  while (i < text.size()) {
    size_t j = i + 1;
    while (j < text.size() && j - i < 4 && ((unsigned char)text[j] & 0xC0) == 0x80) j++;
    const std::string cp = text.substr(i, j - i);
    const int32_t id = find(cp);
    if (id >= 0) {
      t.push_back(id);
    } else {
      for (unsigned char c : cp) t.push_back(c + 3 < vocab ? c + 3 : 0);
    }
    i = j;
  }
  for (;;) {
    float best = -1e10f;
    int best_idx = -1;
    int32_t best_id = -1;
    for (size_t k = 0; k + 1 < t.size(); k++) {
      const int32_t id = find(v.pieces[t[k]] + v.pieces[t[k + 1]]);
      if (id >= 0 && v.scores[id] > best) {
        best = v.scores[id];
        best_idx = (int)k;
        best_id = id;
      }
    }
    if (best_idx < 0) break;
    t[best_idx] = best_id;
    t.erase(t.begin() + best_idx + 1);
  }
  if (eos) t.push_back(2);
  return t;
}

// ---------------------------------------------------------------------------------------
// Wrappers around the code under test.

struct Loaded {
  TokenizerBlob blob;
  Tokenizer tok;
  RawVocab raw;
};

std::vector<int32_t> encode(const Tokenizer& tok, const std::string& text, bool bos = true,
                            bool eos = false) {
  std::vector<int32_t> out(text.size() + 3, -7);
  size_t n = 0;
  const Status s = tok.encode(text.data(), text.size(), bos, eos, out.data(), out.size(), &n);
  EXPECT_EQ(s, Status::kOk) << "encoding '" << text << "'";
  out.resize(n);
  return out;
}

std::string to_string(const Piece& p) {
  return std::string(p.data, p.len);
}

// The text a generator prints for `tokens`: each token decoded after its predecessor; a
// leading BOS is only a predecessor.
std::string decode_all(const Tokenizer& tok, const std::vector<int32_t>& tokens, bool has_bos) {
  std::string s;
  for (size_t i = has_bos ? 1 : 0; i < tokens.size(); i++) {
    s += to_string(tok.decode(i > 0 ? tokens[i - 1] : -1, tokens[i]));
  }
  return s;
}

std::unique_ptr<Loaded> load_real(const std::string& dir, const std::string& file, uint32_t vocab) {
  auto l = std::make_unique<Loaded>();
  std::string err;
  EXPECT_TRUE(load_tokenizer_file(dir + "/" + file, vocab, &l->blob, &err)) << err;
  EXPECT_EQ(l->tok.init(l->blob.view()), Status::kOk);
  l->raw = read_raw(test::read_bytes(dir + "/" + file));
  return l;
}

#define REQUIRE_MODEL_FILE(dir, file)      \
  std::string dir;                         \
  {                                        \
    std::string why_;                      \
    dir = test::models_dir({file}, &why_); \
    if (dir.empty()) GTEST_SKIP() << why_; \
  }

const char* const kSamples[] = {
    "Once upon a time, there was a little girl named Lily.",
    "Hello world",
    "é",
    "日本",
    "🦙 llama",
    "Grüße aus München, naïve café!",
    "  two leading spaces and a tab\tand newline\n",
    "stray continuation \x80\x80 and invalid \xff\xfe bytes",
    "truncated lead \xe6\x97",
    "x",
};

// ---------------------------------------------------------------------------------------
// A hand-made vocabulary: merges by score, ties, byte fallback, parse errors. No env needed.

class TokenizerSynthetic : public ::testing::Test {
 protected:
  // id: piece (score)
  const std::vector<std::string> pieces = {
      "<unk>",     // 0
      "<s>",       // 1
      "</s>",      // 2
      " ",         // 3 (-1)
      "a",         // 4 (-1)
      "b",         // 5 (-1)
      "c",         // 6 (-1)
      "ab",        // 7 (-5)
      "bc",        // 8 (-2)
      "abc",       // 9 (-3)
      " a",        // 10 (-4)
      "cc",        // 11 (-2, ties with "bc")
      "b",         // 12 (duplicate of 5)
      "\xc3\xa9",  // 13 "é" (-1), bytes above ASCII sort last
  };
  const std::vector<float> scores = {0, 0, 0, -1, -1, -1, -1, -5, -2, -3, -4, -2, 0, -1};

  void SetUp() override {
    path_ = dir_.file("tiny.bin");
    std::string err;
    ASSERT_TRUE(write_tokenizer_file(path_, pieces, scores, &err)) << err;
    ASSERT_TRUE(load_tokenizer_file(path_, (uint32_t)pieces.size(), &blob_, &err)) << err;
    ASSERT_EQ(tok_.init(blob_.view()), Status::kOk);
  }

  std::vector<uint8_t> file_bytes() const { return test::read_bytes(path_); }

  bool parse(const std::vector<uint8_t>& d, uint32_t vocab, std::string* err) {
    TokenizerBlob b;
    return parse_tokenizer(d.data(), d.size(), vocab, &b, err);
  }

  test::TempDir dir_;
  std::string path_;
  TokenizerBlob blob_;
  Tokenizer tok_;
};

TEST_F(TokenizerSynthetic, FileLayoutAndBlob) {
  const std::vector<uint8_t> d = file_bytes();
  size_t expect_size = 4;
  for (const std::string& p : pieces) expect_size += 8 + p.size();
  ASSERT_EQ(d.size(), expect_size);
  int32_t header;
  memcpy(&header, d.data(), 4);
  EXPECT_EQ(header, 5);  // "<unk>" is the longest piece
  EXPECT_EQ(blob_.max_token_len, 5u);
  EXPECT_EQ(blob_.vocab_size, pieces.size());
  ASSERT_EQ(blob_.offsets.size(), pieces.size() + 1);
  for (size_t i = 0; i < pieces.size(); i++) {
    EXPECT_EQ(to_string(tok_.piece((int32_t)i)), pieces[i]) << i;
    EXPECT_EQ(blob_.scores[i], scores[i]) << i;
  }
  // Bytewise order ('<' < 'a', '/' < 's' < 'u', 0xC3 last), prefix first, duplicates by id.
  const std::vector<uint32_t> expect_sorted = {3, 10, 2, 1, 0, 4, 7, 9, 5, 12, 8, 6, 11, 13};
  EXPECT_EQ(blob_.sorted, expect_sorted);
}

TEST_F(TokenizerSynthetic, Lookup) {
  EXPECT_EQ(tok_.lookup("ab", 2), 7);
  EXPECT_EQ(tok_.lookup("abc", 3), 9);
  EXPECT_EQ(tok_.lookup(" ", 1), 3);
  EXPECT_EQ(tok_.lookup("b", 1), 5);  // the lower of two equal pieces
  EXPECT_EQ(tok_.lookup("\xc3\xa9", 2), 13);
  EXPECT_EQ(tok_.lookup("abcd", 4), -1);
  EXPECT_EQ(tok_.lookup("a", 0), -1);
  EXPECT_EQ(tok_.lookup("zzz", 3), -1);
  EXPECT_EQ(tok_.lookup("\xff", 1), -1);
  for (size_t i = 0; i < pieces.size(); i++) {
    if (i == 12) continue;
    EXPECT_EQ(tok_.lookup(pieces[i].data(), pieces[i].size()), (int32_t)i) << pieces[i];
  }
}

TEST_F(TokenizerSynthetic, MergesByScoreNotPosition) {
  // [<s> ' ' a b c]: "bc" (-2) beats " a" (-4) and "ab" (-5); then "abc" (-3) beats " a".
  EXPECT_EQ(encode(tok_, "abc"), (std::vector<int32_t>{1, 3, 9}));
  // [<s> ' ' a b]: " a" (-4) beats "ab" (-5); " ab" is not a piece.
  EXPECT_EQ(encode(tok_, "ab"), (std::vector<int32_t>{1, 10, 5}));
  EXPECT_EQ(encode(tok_, "abc", false), (std::vector<int32_t>{3, 9}));
}

TEST_F(TokenizerSynthetic, TiesMergeTheFirstPair) {
  // "bc" and "cc" both score -2: the leftmost pair merges, leaving "c" alone.
  EXPECT_EQ(encode(tok_, "bcc"), (std::vector<int32_t>{1, 3, 8, 6}));
}

TEST_F(TokenizerSynthetic, BosEosAndEmpty) {
  EXPECT_EQ(encode(tok_, ""), (std::vector<int32_t>{1}));
  EXPECT_EQ(encode(tok_, "", true, true), (std::vector<int32_t>{1, 2}));
  EXPECT_EQ(encode(tok_, "", false, false), (std::vector<int32_t>{}));
  EXPECT_EQ(encode(tok_, "a", true, true), (std::vector<int32_t>{1, 10, 2}));
  EXPECT_EQ(encode(tok_, "a", false, true), (std::vector<int32_t>{10, 2}));
}

TEST_F(TokenizerSynthetic, CodepointsAndByteFallback) {
  EXPECT_EQ(encode(tok_, "\xc3\xa9"), (std::vector<int32_t>{1, 3, 13}));
  // No byte tokens in a 14-piece vocabulary: 'z' + 3 and 0xC3 + 3 are out of range -> <unk>.
  EXPECT_EQ(encode(tok_, "z"), (std::vector<int32_t>{1, 3, 0}));
  EXPECT_EQ(encode(tok_, "\xc3\xbc"), (std::vector<int32_t>{1, 3, 0, 0}));
  // A byte whose id + 3 is in range maps onto that id, as in llama2.c: 0x03 -> 6 ("c"); the
  // result then merges like any token: 0x01 -> 4 ("a"), and " " + "a" -> " a".
  EXPECT_EQ(encode(tok_, "\x03"), (std::vector<int32_t>{1, 3, 6}));
  EXPECT_EQ(encode(tok_, "\x01"), (std::vector<int32_t>{1, 10}));
}

TEST_F(TokenizerSynthetic, MatchesReferenceEncoder) {
  RawVocab raw = read_raw(file_bytes());
  for (const char* s : {"abcabc", "ccbbaa", "a b c", "bcbcbc", "cab", "é é", "zzaz"}) {
    EXPECT_EQ(encode(tok_, s), reference_encode(raw, s, true, false)) << s;
  }
}

// Random strings over the vocabulary's letters plus bytes it lacks (stray continuations,
// lead bytes, ASCII without a piece) against the reference encoder.
TEST_F(TokenizerSynthetic, RandomTextMatchesReference) {
  RawVocab raw = read_raw(file_bytes());
  const char alphabet[] = {'a', 'b', 'c', ' ', 'z', '\xc3', '\xa9', '\x80', '\x01', '\x03'};
  uint64_t s = 12345;
  for (int round = 0; round < 300; round++) {
    std::string text;
    const int n = round % 17;
    for (int i = 0; i < n; i++) {
      s = s * 6364136223846793005ull + 1442695040888963407ull;
      text += alphabet[(s >> 33) % sizeof(alphabet)];
    }
    for (bool bos : {true, false}) {
      ASSERT_EQ(encode(tok_, text, bos, !bos), reference_encode(raw, text, bos, !bos))
          << "round " << round;
    }
  }
}

TEST_F(TokenizerSynthetic, DecodeAndRoundTrip) {
  EXPECT_EQ(to_string(tok_.decode(1, 10)), "a");   // space after BOS dropped
  EXPECT_EQ(to_string(tok_.decode(4, 10)), " a");  // kept elsewhere
  EXPECT_EQ(to_string(tok_.decode(1, 3)), "");
  for (const char* s : {"abc", "ab", "bcc", "a b  c", "\xc3\xa9"}) {
    EXPECT_EQ(decode_all(tok_, encode(tok_, s), true), s);
    EXPECT_EQ(decode_all(tok_, encode(tok_, s, false), false), std::string(" ") + s);
  }
}

TEST_F(TokenizerSynthetic, CapacityAndArguments) {
  int32_t out[8];
  size_t n = 99;
  EXPECT_EQ(tok_.encode("abcde", 5, true, true, out, 7, &n), Status::kBadArgument);
  EXPECT_EQ(tok_.encode("abcde", 5, true, true, out, 8, &n), Status::kOk);
  EXPECT_EQ(tok_.encode(nullptr, 3, true, false, out, 8, &n), Status::kBadArgument);
  EXPECT_EQ(tok_.encode(nullptr, 0, true, false, out, 8, &n), Status::kOk);
  EXPECT_EQ(n, 1u);
  EXPECT_EQ(tok_.encode("a", 1, true, false, out, 8, nullptr), Status::kBadArgument);
}

TEST_F(TokenizerSynthetic, OutOfRangeIdsAreEmpty) {
  EXPECT_EQ(tok_.piece(-1).len, 0u);
  EXPECT_EQ(tok_.piece((int32_t)pieces.size()).len, 0u);
  EXPECT_EQ(tok_.piece(INT32_MAX).len, 0u);
  EXPECT_EQ(tok_.decode(1, -5).len, 0u);
  EXPECT_EQ(tok_.decode(-5, 100000).len, 0u);
}

TEST_F(TokenizerSynthetic, InitRejectsBadData) {
  Tokenizer t;
  EXPECT_EQ(t.init(TokenizerData{}), Status::kBadTokenizer);
  TokenizerData d = blob_.view();
  d.scores = nullptr;
  EXPECT_EQ(t.init(d), Status::kBadTokenizer);
  d = blob_.view();
  d.sorted = nullptr;
  EXPECT_EQ(t.init(d), Status::kBadTokenizer);
  d = blob_.view();
  d.vocab_size = 0;
  EXPECT_EQ(t.init(d), Status::kBadTokenizer);
  d = blob_.view();
  d.max_token_len = Tokenizer::kMaxTokenLen + 1;
  EXPECT_EQ(t.init(d), Status::kBadTokenizer);
  // A failed init leaves an inert tokenizer, never a crash.
  EXPECT_EQ(t.piece(0).len, 0u);
  int32_t out[4];
  size_t n = 0;
  EXPECT_NE(t.encode("a", 1, true, false, out, 4, &n), Status::kOk);
}

TEST_F(TokenizerSynthetic, ParseRejectsWrongVocabSize) {
  const std::vector<uint8_t> d = file_bytes();
  std::string err;
  EXPECT_FALSE(parse(d, 20, &err));
  EXPECT_NE(err.find("has 14 tokens but the model needs 20"), std::string::npos) << err;
  err.clear();
  EXPECT_FALSE(parse(d, 10, &err));
  EXPECT_NE(err.find("has 14 tokens but the model needs 10"), std::string::npos) << err;
  err.clear();
  EXPECT_FALSE(parse(d, 0, &err));
  EXPECT_FALSE(err.empty());
}

TEST_F(TokenizerSynthetic, ParseRejectsGarbledFiles) {
  const std::vector<uint8_t> good = file_bytes();
  std::string err;

  std::vector<uint8_t> cut(good.begin(), good.end() - 1);  // last piece short by a byte
  EXPECT_FALSE(parse(cut, 14, &err));
  EXPECT_NE(err.find("truncated"), std::string::npos) << err;
  EXPECT_NE(err.find("entry 13"), std::string::npos) << err;

  std::vector<uint8_t> cut_header(good.begin(), good.end() - 2 - 4);  // inside entry 13's header
  err.clear();
  EXPECT_FALSE(parse(cut_header, 14, &err));
  EXPECT_NE(err.find("entry 13"), std::string::npos) << err;

  err.clear();
  EXPECT_FALSE(parse(std::vector<uint8_t>{5, 0, 0}, 14, &err));
  EXPECT_NE(err.find("too short"), std::string::npos) << err;

  std::vector<uint8_t> extra = good;  // trailing bytes that are not an entry
  extra.push_back(1);
  extra.push_back(2);
  err.clear();
  EXPECT_FALSE(parse(extra, 14, &err));
  EXPECT_NE(err.find("unexpected bytes"), std::string::npos) << err;

  // Entry 1 with a negative, then an absurd, length.
  std::vector<uint8_t> bad = good;
  const size_t len_at = 4 + 8 + pieces[0].size() + 4;
  const int32_t neg = -3, big = 300;
  memcpy(bad.data() + len_at, &neg, 4);
  err.clear();
  EXPECT_FALSE(parse(bad, 14, &err));
  EXPECT_NE(err.find("negative"), std::string::npos) << err;
  EXPECT_NE(err.find("entry 1 "), std::string::npos) << err;
  memcpy(bad.data() + len_at, &big, 4);
  err.clear();
  EXPECT_FALSE(parse(bad, 14, &err));
  EXPECT_NE(err.find("300"), std::string::npos) << err;

  TokenizerBlob b;
  err.clear();
  EXPECT_FALSE(load_tokenizer_file(dir_.file("missing.bin"), 14, &b, &err));
  EXPECT_NE(err.find("missing.bin"), std::string::npos) << err;
}

TEST_F(TokenizerSynthetic, WriteRejectsBadInput) {
  std::string err;
  EXPECT_FALSE(write_tokenizer_file(dir_.file("x.bin"), {"a", "b"}, {0.0f}, &err));
  EXPECT_FALSE(err.empty());
  err.clear();
  EXPECT_FALSE(write_tokenizer_file(dir_.file("y.bin"), {std::string(300, 'a')}, {0.0f}, &err));
  EXPECT_NE(err.find("300"), std::string::npos) << err;
}

// ---------------------------------------------------------------------------------------
// The real Llama 2 vocabulary (tokenizer.bin, 32000 pieces).

TEST(TokenizerLlama2, FileFactsAndBlob) {
  REQUIRE_MODEL_FILE(dir, "tokenizer.bin");
  auto l = load_real(dir, "tokenizer.bin", 32000);
  const RawVocab& raw = l->raw;
  ASSERT_EQ(raw.pieces.size(), 32000u);
  EXPECT_EQ(raw.pieces[0], "<unk>");
  // llama2.c's export writes BOS/EOS as "\n<s>\n" and "\n</s>\n".
  EXPECT_NE(raw.pieces[1].find("<s>"), std::string::npos);
  EXPECT_NE(raw.pieces[2].find("</s>"), std::string::npos);
  for (int b = 0; b < 256; b++) {
    char name[8];
    snprintf(name, sizeof(name), "<0x%02X>", b);
    EXPECT_EQ(raw.pieces[3 + b], name);
  }
  EXPECT_EQ(raw.pieces[15043], " Hello");
  EXPECT_EQ(raw.pieces[3186], " world");

  size_t longest = 0;
  for (size_t i = 0; i < raw.pieces.size(); i++) {
    longest = std::max(longest, raw.pieces[i].size());
    ASSERT_EQ(to_string(l->tok.piece((int32_t)i)), raw.pieces[i]) << i;
    ASSERT_EQ(l->blob.scores[i], raw.scores[i]) << i;
  }
  EXPECT_EQ(l->blob.max_token_len, longest);
  EXPECT_EQ(l->blob.max_token_len, raw.header_max);
}

TEST(TokenizerLlama2, LookupFindsEveryPiece) {
  REQUIRE_MODEL_FILE(dir, "tokenizer.bin");
  auto l = load_real(dir, "tokenizer.bin", 32000);
  for (size_t i = 0; i < l->raw.pieces.size(); i++) {
    const std::string& p = l->raw.pieces[i];
    ASSERT_EQ(l->tok.lookup(p.data(), p.size()), l->raw.first_id.at(p)) << i;
  }
  EXPECT_EQ(l->tok.lookup("definitelynotatoken", 19), -1);
  EXPECT_EQ(l->tok.lookup("\xf0\x9f\xa6\x99", 4), -1);
}

TEST(TokenizerLlama2, HelloWorld) {
  REQUIRE_MODEL_FILE(dir, "tokenizer.bin");
  auto l = load_real(dir, "tokenizer.bin", 32000);
  EXPECT_EQ(encode(l->tok, "Hello world"), (std::vector<int32_t>{1, 15043, 3186}));
  EXPECT_EQ(encode(l->tok, "Hello world", true, true), (std::vector<int32_t>{1, 15043, 3186, 2}));
  const int32_t once = find_piece(l->raw, " Once");
  ASSERT_GT(once, 0);
  EXPECT_EQ(encode(l->tok, "Once").at(1), once);
}

// Meta's Llama 2 encodings of the prompts in its example_text_completion.py, as pinned by
// llama2.c's test.c (tokens from SentencePiece itself).
TEST(TokenizerLlama2, MetaReferencePrompts) {
  REQUIRE_MODEL_FILE(dir, "tokenizer.bin");
  auto l = load_real(dir, "tokenizer.bin", 32000);
  EXPECT_EQ(encode(l->tok, ""), (std::vector<int32_t>{1}));
  EXPECT_EQ(encode(l->tok, "I believe the meaning of life is"),
            (std::vector<int32_t>{1, 306, 4658, 278, 6593, 310, 2834, 338}));
  EXPECT_EQ(encode(l->tok, "Simply put, the theory of relativity states that "),
            (std::vector<int32_t>{1, 3439, 17632, 1925, 29892, 278, 6368, 310, 14215, 537, 5922,
                                  393, 29871}));
  EXPECT_EQ(encode(l->tok,
                   "A brief message congratulating the team on the launch:\n\n        Hi "
                   "everyone,\n\n        I just "),
            (std::vector<int32_t>{1,     319,   11473, 2643, 378,   629, 271, 18099, 278,
                                  3815,  373,   278,   6826, 29901, 13,  13,  4706,  6324,
                                  14332, 29892, 13,    13,   4706,  306, 925, 29871}));
  EXPECT_EQ(encode(l->tok,
                   "Translate English to French:\n\n        sea otter => loutre de mer\n        "
                   "peppermint => menthe poivrée\n        plush girafe => girafe peluche\n        "
                   "cheese =>"),
            (std::vector<int32_t>{1,     4103, 9632, 4223, 304,   5176, 29901, 13,   13,   4706,
                                  7205,  4932, 357,  1149, 301,   449,  276,   316,  2778, 13,
                                  4706,  1236, 407,  837,  524,   1149, 6042,  354,  772,  440,
                                  29878, 1318, 13,   4706, 715,   1878, 330,   3055, 1725, 1149,
                                  330,   3055, 1725, 4639, 28754, 13,   4706,  923,  968,  1149}));
}

TEST(TokenizerLlama2, Utf8AndByteFallback) {
  REQUIRE_MODEL_FILE(dir, "tokenizer.bin");
  auto l = load_real(dir, "tokenizer.bin", 32000);
  const int32_t space = find_piece(l->raw, " ");
  ASSERT_GE(space, 0);
  // The llama emoji is not a piece: its four bytes become <0xF0><0x9F><0xA6><0x99>.
  ASSERT_EQ(find_piece(l->raw, "\xf0\x9f\xa6\x99"), -1);
  EXPECT_EQ(encode(l->tok, "\xf0\x9f\xa6\x99"),
            (std::vector<int32_t>{1, space, 0xF0 + 3, 0x9F + 3, 0xA6 + 3, 0x99 + 3}));
  // "é" is a piece and so is " é": the dummy prefix merges with it.
  ASSERT_GT(find_piece(l->raw, "\xc3\xa9"), 258);
  const int32_t space_e = find_piece(l->raw, " \xc3\xa9");
  ASSERT_GT(space_e, 0);
  EXPECT_EQ(encode(l->tok, "\xc3\xa9"), (std::vector<int32_t>{1, space_e}));
  // "日" and "本" are pieces but " 日" and "日本" are not: nothing merges.
  const int32_t ri = find_piece(l->raw, "\xe6\x97\xa5"), ben = find_piece(l->raw, "\xe6\x9c\xac");
  ASSERT_GT(ri, 0);
  ASSERT_GT(ben, 0);
  ASSERT_EQ(find_piece(l->raw, "\xe6\x97\xa5\xe6\x9c\xac"), -1);
  ASSERT_EQ(find_piece(l->raw, " \xe6\x97\xa5"), -1);
  EXPECT_EQ(encode(l->tok, "\xe6\x97\xa5\xe6\x9c\xac"), (std::vector<int32_t>{1, space, ri, ben}));
  for (const char* s : kSamples) {
    EXPECT_EQ(encode(l->tok, s), reference_encode(l->raw, s, true, false)) << s;
    EXPECT_EQ(encode(l->tok, s, false, true), reference_encode(l->raw, s, false, true)) << s;
  }
}

TEST(TokenizerLlama2, Decode) {
  REQUIRE_MODEL_FILE(dir, "tokenizer.bin");
  auto l = load_real(dir, "tokenizer.bin", 32000);
  const Tokenizer& t = l->tok;
  EXPECT_EQ(to_string(t.decode(1, 15043)), "Hello");
  EXPECT_EQ(to_string(t.decode(15043, 3186)), " world");
  ASSERT_EQ(l->raw.pieces[13], "<0x0A>");
  EXPECT_EQ(to_string(t.decode(15043, 13)), "\n");
  EXPECT_EQ(to_string(t.decode(1, 13)), "\n");
  EXPECT_EQ(to_string(t.decode(5, 3 + 0xF0)), "\xf0");
  EXPECT_EQ(to_string(t.decode(5, 3)), std::string(1, '\0'));
  EXPECT_EQ(to_string(t.piece(13)), "<0x0A>");  // piece() is the raw text
  EXPECT_EQ(t.piece(32000).len, 0u);
  EXPECT_EQ(t.decode(1, 32000).len, 0u);
  EXPECT_EQ(t.decode(1, -1).len, 0u);
}

TEST(TokenizerLlama2, RoundTrip) {
  REQUIRE_MODEL_FILE(dir, "tokenizer.bin");
  auto l = load_real(dir, "tokenizer.bin", 32000);
  for (const char* s : kSamples) {
    EXPECT_EQ(decode_all(l->tok, encode(l->tok, s), true), s);
    // Without BOS the dummy prefix space is printed.
    EXPECT_EQ(decode_all(l->tok, encode(l->tok, s, false), false), std::string(" ") + s);
  }
}

TEST(TokenizerLlama2, WrongModelVocabIsExplained) {
  REQUIRE_MODEL_FILE(dir, "tokenizer.bin");
  TokenizerBlob b;
  std::string err;
  EXPECT_FALSE(load_tokenizer_file(dir + "/tokenizer.bin", 512, &b, &err));
  EXPECT_NE(err.find("has 32000 tokens but the model needs 512"), std::string::npos) << err;
  EXPECT_NE(err.find("tok512.bin"), std::string::npos) << err;
}

// ---------------------------------------------------------------------------------------
// stories260K's 512-piece vocabulary (tok512.bin).

TEST(TokenizerTok512, EncodeDecode) {
  REQUIRE_MODEL_FILE(dir, "tok512.bin");
  auto l = load_real(dir, "tok512.bin", 512);
  ASSERT_EQ(l->raw.pieces.size(), 512u);
  EXPECT_EQ(l->blob.max_token_len, 7u);
  const int32_t space = find_piece(l->raw, " ");
  ASSERT_GE(space, 0);
  EXPECT_EQ(encode(l->tok, ""), (std::vector<int32_t>{1}));
  const int32_t once = find_piece(l->raw, " Once");
  ASSERT_GT(once, 0);
  EXPECT_EQ(encode(l->tok, "Once").at(1), once);
  // "ü" is not among the 512 pieces: <0xC3><0xBC>.
  ASSERT_EQ(find_piece(l->raw, "\xc3\xbc"), -1);
  EXPECT_EQ(encode(l->tok, "\xc3\xbc"), (std::vector<int32_t>{1, space, 0xC3 + 3, 0xBC + 3}));
  for (const char* s : kSamples) {
    EXPECT_EQ(encode(l->tok, s), reference_encode(l->raw, s, true, false)) << s;
    EXPECT_EQ(decode_all(l->tok, encode(l->tok, s), true), s);
  }
  EXPECT_EQ(to_string(l->tok.decode(once, 13)), "\n");
  EXPECT_EQ(to_string(l->tok.decode(1, once)), "Once");
}

TEST(TokenizerTok512, RandomTextMatchesReference) {
  REQUIRE_MODEL_FILE(dir, "tok512.bin");
  auto l = load_real(dir, "tok512.bin", 512);
  const std::string words[] = {"Once", " upon", " a", " time",    ",",        " Lily",
                               " the", "\n",    " ",  "\xc3\xa9", "\xc3\xbc", "\xf0\x9f\x98\x80",
                               "\x80", "\xff",  "!",  "Tim",      "e"};
  uint64_t s = 777;
  for (int round = 0; round < 200; round++) {
    std::string text;
    for (int i = 0; i < round % 23; i++) {
      s = s * 6364136223846793005ull + 1442695040888963407ull;
      text += words[(s >> 33) % (sizeof(words) / sizeof(words[0]))];
    }
    const std::vector<int32_t> t = encode(l->tok, text);
    ASSERT_EQ(t, reference_encode(l->raw, text, true, false)) << "round " << round;
    ASSERT_EQ(decode_all(l->tok, t, true), text) << "round " << round;
  }
}

TEST(TokenizerTok512, WrongModelVocabIsExplained) {
  REQUIRE_MODEL_FILE(dir, "tok512.bin");
  TokenizerBlob b;
  std::string err;
  EXPECT_FALSE(load_tokenizer_file(dir + "/tok512.bin", 32000, &b, &err));
  EXPECT_NE(err.find("has 512 tokens but the model needs 32000"), std::string::npos) << err;
}

}  // namespace
}  // namespace llmwire
