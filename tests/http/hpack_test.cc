// tests/http/hpack_test.cc: torii's HPACK decoder (http/hpack.h), held to nghttp2's deflater
// and inflater.
#include "http/hpack.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "tests/http/h2_test_util.h"

namespace torii::http {
namespace {

// A block written as a literal, NUL bytes included.
template <size_t N>
std::string B(const char (&bytes)[N]) {
  return std::string(bytes, N - 1);
}

Fields Decode(HpackDecoder& d, std::string_view block, bool* ok = nullptr) {
  CollectFields c;
  const bool r = d.Decode(block, c);
  if (ok != nullptr) {
    *ok = r;
  } else {
    EXPECT_TRUE(r) << d.error();
  }
  return c.fields;
}

// Every static table entry, by index, as nghttp2 reads it.
TEST(HpackDecoderTest, StaticTableAsNghttp2) {
  for (int i = 1; i <= 61; ++i) {
    const std::string block(1, static_cast<char>(0x80 | i));
    HpackDecoder d;
    NgInflater ng;
    Fields want;
    ASSERT_TRUE(ng.Decode(block, &want));
    EXPECT_EQ(Decode(d, block), want) << i;
  }
  HpackDecoder d;
  bool ok = true;
  Decode(d, B("\x80"), &ok);  // index 0
  EXPECT_FALSE(ok);
  HpackDecoder d2;
  Decode(d2, std::string(1, static_cast<char>(0x80 | 62)), &ok);  // an empty dynamic table
  EXPECT_FALSE(ok);
}

// Each byte value alone, and random strings of every byte, Huffman-coded by nghttp2 (it codes
// a string so whenever that is shorter): decoded back as they were.
TEST(HpackDecoderTest, HuffmanStringsRoundTrip) {
  std::mt19937 rng(7);
  for (int round = 0; round < 2000; ++round) {
    std::string value;
    if (round < 256) {
      value.assign(3, static_cast<char>(round));
    } else {
      const size_t n = rng() % 64;
      const bool text = round % 2 == 0;  // mostly short codes, or any byte
      for (size_t i = 0; i < n; ++i) {
        value.push_back(text ? "abcdefghijklmnopqrstuvwxyz0123456789-_./:; "[rng() % 44]
                             : static_cast<char>(rng() % 256));
      }
    }
    Deflater enc;
    const std::string block = enc.Block({{"x-v", value}});
    HpackDecoder d;
    EXPECT_EQ(Decode(d, block), (Fields{{"x-v", value}})) << round;
  }
}

// Strings decoded again (from the thread's recent ones) come out as decoding them gives, among
// many more than the look-up holds (so that slots are taken over), short and long, and a
// string that fails fails every time.
TEST(HpackDecoderTest, RecentStringsDecodeAsDecoding) {
  std::mt19937 rng(3);
  std::vector<std::string> coded;
  for (int i = 0; i < 300; ++i) {
    std::string value(1 + rng() % 50, 'x');
    for (char& c : value) {
      c = "abcdefghij0123456789 :/-"[rng() % 24];
    }
    Deflater enc;  // a fresh table: the value goes as a string every time
    coded.push_back(enc.Block({{"x-v", value}}));
  }
  for (int round = 0; round < 5000; ++round) {
    const std::string& block = coded[rng() % coded.size()];
    HpackDecoder a;
    NgInflater ng;
    Fields want;
    ASSERT_TRUE(ng.Decode(block, &want));
    ASSERT_EQ(Decode(a, block), want) << round;
  }
  for (const std::string& bad :
       {std::string("\x00", 1), std::string("\xff"), std::string("\xff\xff\xff\xff")}) {
    for (int i = 0; i < 3; ++i) {
      std::string out;
      EXPECT_FALSE(HuffmanDecodeRecent(bad, &out));
    }
  }
  std::string out;
  EXPECT_TRUE(HuffmanDecodeRecent("\x07", &out));  // "0", padding
  EXPECT_TRUE(HuffmanDecodeRecent("\x07", &out));
  EXPECT_EQ(out, "00");  // appended each time
}

// Header lists with repeats, through one deflater and one decoder for the whole run: entries
// enter, are referenced and are evicted as the deflater's table (4,096 bytes) turns over.
TEST(HpackDecoderTest, DynamicTableFollowsTheEncoder) {
  std::mt19937 rng(11);
  Deflater enc;
  HpackDecoder d;
  NgInflater ng;
  const std::vector<std::string> names = {"x-a",         "x-bb", "cookie", "user-agent",
                                          "x-long-name", "etag", "date",   "content-type"};
  for (int round = 0; round < 3000; ++round) {
    Fields fields;
    const size_t n = 1 + rng() % 12;
    for (size_t i = 0; i < n; ++i) {
      std::string value(rng() % (round % 10 == 0 ? 1500 : 40), 'v');
      for (char& c : value) {
        c = static_cast<char>('a' + rng() % 8);  // few values: some repeat, get indexed
      }
      if (rng() % 3 == 0) {
        value = std::to_string(rng() % 5);
      }
      fields.emplace_back(names[rng() % names.size()], value);
    }
    const std::string block = enc.Block(fields);
    Fields want;
    ASSERT_TRUE(ng.Decode(block, &want));
    ASSERT_EQ(want, fields);
    ASSERT_EQ(Decode(d, block), fields) << round;
    ASSERT_EQ(d.table_size(), ng.table_size()) << round;
    if (round % 500 == 0) {
      d.Trim();  // keeps the contents
    }
  }
}

// RFC 7541 §4.4: a field that enters the table under the name of the entry its arrival evicts
// keeps that name.
TEST(HpackDecoderTest, NameOfAnEntryEvictedByTheNewOne) {
  HpackDecoder d;
  // A table of 64 bytes (size update), one entry "aaaa: bbbb" (40 bytes), then a literal with
  // incremental indexing named by index 62 (that entry) with a 20-byte value: 24 + 20 + 32 =
  // 56, which evicts the first.
  std::string block = "\x3f\x21";  // size update to 64: 31 + 33
  block +=
      "\x40\x04"
      "aaaa"
      "\x04"
      "bbbb";
  EXPECT_EQ(Decode(d, block), (Fields{{"aaaa", "bbbb"}}));
  EXPECT_EQ(d.table_size(), 40u);
  std::string next = "\x7e\x14" + std::string(20, 'c');  // index 62, 20-byte value
  EXPECT_EQ(Decode(d, next), (Fields{{"aaaa", std::string(20, 'c')}}));
  EXPECT_EQ(d.entries(), 1u);
  EXPECT_EQ(d.table_size(), 56u);
  EXPECT_EQ(Decode(d, "\xbe"), (Fields{{"aaaa", std::string(20, 'c')}}));
  // An entry larger than the table: the table empties, nothing enters.
  std::string big =
      "\x40\x04"
      "dddd"
      "\x39" +
      std::string(57, 'e');  // 57 bytes of value: 93 in all
  EXPECT_EQ(Decode(d, big), (Fields{{"dddd", std::string(57, 'e')}}));
  EXPECT_EQ(d.entries(), 0u);
  EXPECT_EQ(d.table_size(), 0u);
}

TEST(HpackDecoderTest, SizeUpdates) {
  HpackDecoder d;
  EXPECT_EQ(Decode(d,
                   "\x40\x01"
                   "a"
                   "\x01"
                   "b"),
            (Fields{{"a", "b"}}));
  // Two updates at a block's start (RFC 7541 §4.2): down to 0 empties the table.
  EXPECT_EQ(Decode(d, "\x20\x3f\xe1\x1f\x82"), (Fields{{":method", "GET"}}));
  EXPECT_EQ(d.entries(), 0u);
  bool ok = true;
  HpackDecoder d2;
  Decode(d2, "\x3f\xe2\x1f", &ok);  // 4,097: above SETTINGS_HEADER_TABLE_SIZE
  EXPECT_FALSE(ok);
  HpackDecoder d3;
  Decode(d3, "\x82\x20", &ok);  // after a field
  EXPECT_FALSE(ok);
}

// What a peer may send that breaks HPACK: each a decoding error, as nghttp2 finds too.
TEST(HpackDecoderTest, DecodingErrorsAsNghttp2) {
  const std::vector<std::pair<const char*, std::string>> cases = {
      {"index 0", B("\x80")},
      {"index past the tables", B("\xbf\x01")},
      {"index past 32 bits", B("\xff\xff\xff\xff\xff\x7f")},
      {"index cut short", B("\xff\xff")},
      {"literal name index past", B("\x0f\x40\x01"
                                    "a")},
      {"string past the block", B("\x00\x05"
                                  "ab")},
      {"string length cut short", B("\x00\x7f")},
      {"value missing", B("\x00\x01"
                          "a")},
      {"name missing", B("\x40")},
      {"Huffman padding of 0 bits", B("\x00\x81\x00\x01"
                                      "a")},
      {"Huffman padding over 7 bits", B("\x00\x81\xff\x01"
                                        "a")},
      {"Huffman EOS", B("\x00\x84\xff\xff\xff\xff\x01"
                        "a")},
      {"size update above", B("\x3f\xe2\x1f")},
      {"size update after a field", B("\x82\x3f\x01")},
  };
  for (const auto& [what, block] : cases) {
    HpackDecoder d;
    bool ok = true;
    Decode(d, block, &ok);
    EXPECT_FALSE(ok) << what;
    EXPECT_NE(d.error(), nullptr) << what;
    NgInflater ng;
    Fields unused;
    EXPECT_FALSE(ng.Decode(block, &unused)) << what << " (nghttp2 takes it)";
    // A failed decoder takes nothing more.
    Decode(d, "\x82", &ok);
    EXPECT_FALSE(ok) << what;
  }
}

// Huffman strings ending on each kind of boundary: a code that fills the last byte, padding of
// 1 to 7 bits, a short code inside the padding's width.
TEST(HpackDecoderTest, HuffmanPadding) {
  std::string out;
  // '0' is 00000 (5 bits), 'a' 00011 (5): "0" + 3 bits of padding.
  EXPECT_TRUE(HuffmanDecode("\x07", &out));
  EXPECT_EQ(out, "0");
  out.clear();
  // "00" then 6 bits of 1s: 00000 00000 111111 = 0x00 0x3f.
  EXPECT_TRUE(HuffmanDecode(std::string("\x00\x3f", 2), &out));
  EXPECT_EQ(out, "00");
  out.clear();
  // 8 bits of padding alone: an error.
  EXPECT_FALSE(HuffmanDecode("\xff", &out));
  out.clear();
  // Padding of 0s where 1s belong.
  EXPECT_FALSE(HuffmanDecode(std::string("\x00", 1), &out));  // "0" + 000
  out.clear();
  EXPECT_TRUE(HuffmanDecode("", &out));
  EXPECT_EQ(out, "");
}

}  // namespace
}  // namespace torii::http
