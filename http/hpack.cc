// http/hpack.cc: see hpack.h.
#include "http/hpack.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <utility>

namespace torii::http {

namespace {

// RFC 7541 Appendix A.
struct StaticEntry {
  std::string_view name;
  std::string_view value;
};
constexpr std::array<StaticEntry, 61> kStaticTable = {{
    {":authority", ""},
    {":method", "GET"},
    {":method", "POST"},
    {":path", "/"},
    {":path", "/index.html"},
    {":scheme", "http"},
    {":scheme", "https"},
    {":status", "200"},
    {":status", "204"},
    {":status", "206"},
    {":status", "304"},
    {":status", "400"},
    {":status", "404"},
    {":status", "500"},
    {"accept-charset", ""},
    {"accept-encoding", "gzip, deflate"},
    {"accept-language", ""},
    {"accept-ranges", ""},
    {"accept", ""},
    {"access-control-allow-origin", ""},
    {"age", ""},
    {"allow", ""},
    {"authorization", ""},
    {"cache-control", ""},
    {"content-disposition", ""},
    {"content-encoding", ""},
    {"content-language", ""},
    {"content-length", ""},
    {"content-location", ""},
    {"content-range", ""},
    {"content-type", ""},
    {"cookie", ""},
    {"date", ""},
    {"etag", ""},
    {"expect", ""},
    {"expires", ""},
    {"from", ""},
    {"host", ""},
    {"if-match", ""},
    {"if-modified-since", ""},
    {"if-none-match", ""},
    {"if-range", ""},
    {"if-unmodified-since", ""},
    {"last-modified", ""},
    {"link", ""},
    {"location", ""},
    {"max-forwards", ""},
    {"proxy-authenticate", ""},
    {"proxy-authorization", ""},
    {"range", ""},
    {"referer", ""},
    {"refresh", ""},
    {"retry-after", ""},
    {"server", ""},
    {"set-cookie", ""},
    {"strict-transport-security", ""},
    {"transfer-encoding", ""},
    {"user-agent", ""},
    {"vary", ""},
    {"via", ""},
    {"www-authenticate", ""},
}};

// RFC 7541 Appendix B: the code length of each symbol (256 is EOS). The code is canonical:
// codes of one length are consecutive in symbol order, and each length's first code follows
// the previous length's last (shifted), so the lengths are all it takes to rebuild it.
constexpr std::array<uint8_t, 257> kCodeLength = {
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28,
    28, 28, 28, 28, 28, 28, 28, 28, 6,  10, 10, 12, 13, 6,  8,  11, 10, 10, 8,  11, 8,  6,  6,  6,
    5,  5,  5,  6,  6,  6,  6,  6,  6,  6,  7,  8,  15, 6,  12, 10, 13, 6,  7,  7,  7,  7,  7,  7,
    7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  8,  7,  8,  13, 19, 13, 14, 6,
    15, 5,  6,  5,  6,  5,  6,  6,  6,  5,  7,  7,  6,  6,  6,  5,  6,  7,  6,  5,  5,  6,  7,  7,
    7,  7,  7,  15, 11, 14, 13, 28, 20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23,
    24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, 22, 21, 20, 22, 22, 23, 23, 21,
    23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,
    26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19, 21, 26, 27, 27, 26, 27, 24,
    21, 21, 26, 26, 28, 27, 27, 27, 20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23,
    26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, 30};

constexpr int kMaxCodeLength = 30;
constexpr int kFastBits = 12;  // up to two symbols decode in one lookup of this many bits
constexpr uint16_t kEos = 256;

struct HuffmanTables {
  // Per length: the first code (right-aligned), how many codes, where their symbols begin in
  // `sorted`.
  std::array<uint32_t, kMaxCodeLength + 1> first{};
  std::array<uint32_t, kMaxCodeLength + 1> count{};
  std::array<uint16_t, kMaxCodeLength + 1> offset{};
  std::array<uint16_t, 257> sorted{};  // symbols by (length, symbol)
  // The next kFastBits bits of input: the one or two whole codes they begin with (codes of
  // bytes, not EOS), packed as Fast* below; 0 when the first code is longer.
  std::array<uint32_t, 1u << kFastBits> fast{};
};

// A fast entry: the first symbol (bits 0-7), the second (8-15), the first's length (16-20),
// both lengths (21-25), how many symbols (26-27).
constexpr uint32_t FastFirstLength(uint32_t e) { return (e >> 16) & 31; }
constexpr uint32_t FastLength(uint32_t e) { return (e >> 21) & 31; }
constexpr uint32_t FastCount(uint32_t e) { return e >> 26; }

// The symbol whose code begins `bits` (left-aligned in 32 bits, the first `avail` of them
// meaningful), and its length; length 0 when no code of at most `avail` bits begins them.
constexpr std::pair<uint16_t, int> FirstCode(const HuffmanTables& t, uint32_t bits, int avail) {
  for (int len = 1; len <= avail; ++len) {
    const uint32_t code = bits >> (32 - len);
    if (code - t.first[len] < t.count[len]) {
      return {t.sorted[t.offset[len] + (code - t.first[len])], len};
    }
  }
  return {0, 0};
}

constexpr HuffmanTables BuildTables() {
  HuffmanTables t;
  for (uint8_t len : kCodeLength) {
    ++t.count[len];
  }
  uint32_t code = 0;
  uint16_t at = 0;
  for (int len = 1; len <= kMaxCodeLength; ++len) {
    code <<= 1;
    t.first[len] = code;
    t.offset[len] = at;
    for (uint16_t sym = 0; sym < kCodeLength.size(); ++sym) {
      if (kCodeLength[sym] == len) {
        t.sorted[at++] = sym;
        ++code;
      }
    }
  }
  for (uint32_t prefix = 0; prefix < (1u << kFastBits); ++prefix) {
    const uint32_t bits = prefix << (32 - kFastBits);
    const auto [s1, l1] = FirstCode(t, bits, kFastBits);
    if (l1 == 0) {
      continue;
    }
    const auto [s2, l2] = FirstCode(t, bits << l1, kFastBits - l1);
    const uint32_t count = l2 == 0 ? 1 : 2;
    t.fast[prefix] = s1 | (static_cast<uint32_t>(s2) << 8) | (static_cast<uint32_t>(l1) << 16) |
                     (static_cast<uint32_t>(l1 + l2) << 21) | (count << 26);
  }
  return t;
}

constexpr HuffmanTables kHuffman = BuildTables();

// An integer with an N-bit prefix (RFC 7541 §5.1), at most 32 bits.
bool ReadInt(const uint8_t** p, const uint8_t* end, int prefix, uint64_t* out) {
  const uint32_t mask = (1u << prefix) - 1;
  uint64_t v = **p & mask;
  ++*p;
  if (v < mask) {
    *out = v;
    return true;
  }
  for (int shift = 0; *p < end; shift += 7) {
    const uint8_t b = **p;
    ++*p;
    v += static_cast<uint64_t>(b & 0x7f) << shift;
    if (v > UINT32_MAX) {
      return false;
    }
    if ((b & 0x80) == 0) {
      *out = v;
      return true;
    }
    if (shift >= 28) {
      return false;  // a sixth continuation byte: past 32 bits whatever it holds
    }
  }
  return false;  // the block ended inside it
}

}  // namespace

bool HuffmanDecode(std::string_view in, std::string* out) {
  // Each code is at least 5 bits: the output's room (and one byte for a second symbol written
  // before it is known to count), written through a pointer, cut at the end.
  const size_t at = out->size();
  out->resize(at + in.size() * 8 / 5 + 2);
  char* o = out->data() + at;
  const auto* p = reinterpret_cast<const uint8_t*>(in.data());
  const uint8_t* const end = p + in.size();
  uint64_t acc = 0;  // input not yet decoded, left-aligned: the top `bits` bits
  int bits = 0;
  bool ok = true;
  for (;;) {
    if (bits < kMaxCodeLength) {
      if (end - p >= 8) {
        // Eight bytes at once: those that fit are counted; the rest of the last one is the
        // input's own bits, which the next refill writes again over themselves.
        uint64_t w;
        std::memcpy(&w, p, 8);
        acc |= __builtin_bswap64(w) >> bits;
        p += (63 - bits) >> 3;
        bits |= 56;
      } else if (p < end) {
        // The last bytes (under eight), as many as fit (at least four: bits < 30).
        const auto n = static_cast<size_t>(end - p);
        uint64_t w = 0;
        std::memcpy(&w, p, n);
        acc |= __builtin_bswap64(w) >> bits;
        const size_t k = std::min(n, static_cast<size_t>(64 - bits) >> 3);
        p += k;
        bits += static_cast<int>(8 * k);
      } else if (bits == 0) {
        break;
      }
    }
    // The next 32 bits (past `bits`, zeros or input the refill will count later): a code
    // found longer than `bits` is checked as the end's padding.
    const auto window = static_cast<uint32_t>(acc >> 32);
    const uint32_t e = kHuffman.fast[window >> (32 - kFastBits)];
    if (e != 0) {
      o[0] = static_cast<char>(e);
      o[1] = static_cast<char>(e >> 8);
      int length = static_cast<int>(FastLength(e));
      int count = static_cast<int>(FastCount(e));
      if (length > bits) {
        // Near the end: the second code, or the first, runs into the padding.
        length = static_cast<int>(FastFirstLength(e));
        count = 1;
        if (length > bits) {
          ok = bits < 8 && (acc >> (64 - bits)) == (uint64_t{1} << bits) - 1;
          break;
        }
      }
      o += count;
      acc <<= length;
      bits -= length;
      continue;
    }
    // A code longer than kFastBits (never at the end's padding: 1 to 7 bits of 1s, then
    // zeros, always begin a code of at most kFastBits, which the fast path checks).
    const auto [symbol, length] = FirstCode(kHuffman, window, kMaxCodeLength);
    if (length > bits) {
      ok = false;  // padding over 7 bits, or not of 1s
      break;
    }
    if (symbol == kEos) {
      ok = false;
      break;
    }
    *o++ = static_cast<char>(symbol);
    acc <<= length;
    bits -= length;
  }
  out->resize(static_cast<size_t>(o - out->data()));
  return ok;
}

namespace {

// Short Huffman strings decoded lately on this thread, by their coded bytes. A backend sends
// most of its response fields' values again in every response, Huffman-coded anew and not
// from its table (nginx: the server, content type, validators, the date within its second), so
// most strings a worker decodes it has decoded before: a look-up (a hash of at most two words,
// one comparison, one copy) costs a tenth of decoding them. Only strings that decoded
// cleanly are kept, and a hit is compared in full, so what it gives is what decoding would.
class RecentHuffman {
 public:
  static constexpr size_t kMaxIn = 32;

  bool Find(std::string_view in, std::string* out) const {
    const Slot& s = slots_[SlotOf(in)];
    if (s.in_len != in.size() || std::memcmp(s.in, in.data(), in.size()) != 0) {
      return false;
    }
    out->append(s.out, s.out_len);
    return true;
  }
  void Keep(std::string_view in, std::string_view decoded) {
    if (decoded.size() > kMaxOut) {
      return;
    }
    Slot& s = slots_[SlotOf(in)];
    s.in_len = static_cast<uint8_t>(in.size());
    s.out_len = static_cast<uint8_t>(decoded.size());
    std::memcpy(s.in, in.data(), in.size());
    std::memcpy(s.out, decoded.data(), decoded.size());
  }

 private:
  static constexpr size_t kSlots = 64;
  static constexpr size_t kMaxOut = kMaxIn * 8 / 5;
  struct Slot {
    uint8_t in_len = 0xff;  // (no string: longer than kMaxIn)
    uint8_t out_len = 0;
    char in[kMaxIn];
    char out[kMaxOut];
  };

  // `in` is 1 to kMaxIn bytes: its first and last eight (overlapping, or zero-padded when
  // shorter) and its length, mixed.
  static size_t SlotOf(std::string_view in) {
    uint64_t a = 0;
    uint64_t b = 0;
    std::memcpy(&a, in.data(), std::min<size_t>(in.size(), 8));
    if (in.size() > 8) {
      std::memcpy(&b, in.data() + in.size() - 8, 8);
    }
    const uint64_t h = (a * 0x9e3779b97f4a7c15ull) ^ (b * 0xc2b2ae3d27d4eb4full) ^ in.size();
    return static_cast<size_t>((h * 0x165667b19e3779f9ull) >> 58);
  }

  std::array<Slot, kSlots> slots_{};
};

thread_local RecentHuffman t_recent;

}  // namespace

bool HuffmanDecodeRecent(std::string_view in, std::string* out) {
  if (in.empty() || in.size() > RecentHuffman::kMaxIn) {
    return HuffmanDecode(in, out);
  }
  if (t_recent.Find(in, out)) {
    return true;
  }
  const size_t at = out->size();
  if (!HuffmanDecode(in, out)) {
    return false;
  }
  t_recent.Keep(in, std::string_view(*out).substr(at));
  return true;
}

bool HpackDecoder::Fail(const char* why) {
  error_ = why;
  return false;
}

bool HpackDecoder::Lookup(uint64_t index, std::string_view* name, std::string_view* value) {
  if (index == 0) {
    return Fail("index 0");
  }
  if (index <= kStaticTable.size()) {
    *name = kStaticTable[index - 1].name;
    *value = kStaticTable[index - 1].value;
    return true;
  }
  index -= kStaticTable.size() + 1;
  if (index >= count_) {
    return Fail("index past the dynamic table");
  }
  const Entry& e = Nth(static_cast<uint32_t>(index));
  const std::string_view entry = std::string_view(bytes_).substr(e.at - base_);
  *name = entry.substr(0, e.name_len);
  *value = entry.substr(e.name_len, e.value_len);
  return true;
}

bool HpackDecoder::ReadString(const uint8_t** p, const uint8_t* end, std::string* buf,
                              std::string_view* out) {
  if (*p == end) {
    return Fail("a string past the block");
  }
  const bool huffman = (**p & 0x80) != 0;
  uint64_t len = 0;
  if (!ReadInt(p, end, 7, &len)) {
    return Fail("a string length past 32 bits or the block");
  }
  if (len > static_cast<uint64_t>(end - *p)) {
    return Fail("a string past the block");
  }
  const std::string_view raw(reinterpret_cast<const char*>(*p), len);
  *p += len;
  if (!huffman) {
    *out = raw;
    return true;
  }
  buf->clear();
  if (!HuffmanDecodeRecent(raw, buf)) {
    return Fail("a Huffman string with EOS or bad padding");
  }
  *out = *buf;
  return true;
}

bool HpackDecoder::ReadLiteral(const uint8_t** p, const uint8_t* end, int prefix, bool indexing,
                               std::string_view* name, std::string_view* value) {
  uint64_t index = 0;
  if (!ReadInt(p, end, prefix, &index)) {
    return Fail("an index past 32 bits or the block");
  }
  if (index == 0) {
    if (!ReadString(p, end, &name_buf_, name)) {
      return false;
    }
  } else {
    std::string_view unused;
    if (!Lookup(index, name, &unused)) {
      return false;
    }
    if (indexing && index > kStaticTable.size()) {
      // A name in the dynamic table may be evicted by the entry this field makes (§4.4).
      name_buf_.assign(*name);
      *name = name_buf_;
    }
  }
  return ReadString(p, end, &value_buf_, value);
}

bool HpackDecoder::Decode(std::string_view block, Sink& sink) {
  if (error_ != nullptr) {
    return false;
  }
  const auto* p = reinterpret_cast<const uint8_t*>(block.data());
  const uint8_t* const end = p + block.size();
  bool fields = false;
  while (p < end) {
    const uint8_t b = *p;
    std::string_view name;
    std::string_view value;
    if ((b & 0x80) != 0) {  // §6.1 indexed field
      uint64_t index = 0;
      if (!ReadInt(&p, end, 7, &index)) {
        return Fail("an index past 32 bits or the block");
      }
      if (!Lookup(index, &name, &value)) {
        return false;
      }
    } else if ((b & 0x40) != 0) {  // §6.2.1 literal with incremental indexing
      if (!ReadLiteral(&p, end, 6, /*indexing=*/true, &name, &value)) {
        return false;
      }
      Insert(name, value);
    } else if ((b & 0x20) != 0) {  // §6.3 dynamic table size update
      uint64_t size = 0;
      if (!ReadInt(&p, end, 5, &size)) {
        return Fail("a table size past 32 bits or the block");
      }
      if (fields) {
        return Fail("a table size update after a field");  // §4.2: at a block's start
      }
      if (size > kMaxTableSize) {
        return Fail("a table size update above SETTINGS_HEADER_TABLE_SIZE");
      }
      max_size_ = static_cast<uint32_t>(size);
      EvictTo(max_size_);
      continue;
    } else {  // §6.2.2 without indexing (0000), §6.2.3 never indexed (0001)
      if (!ReadLiteral(&p, end, 4, /*indexing=*/false, &name, &value)) {
        return false;
      }
    }
    fields = true;
    sink.Field(name, value);
  }
  return true;
}

void HpackDecoder::EvictTo(uint32_t max) {
  while (size_ > max) {
    const Entry& e = ring_[first_];
    const uint32_t len = uint32_t{e.name_len} + e.value_len;
    size_ -= len + 32;
    start_ += len;
    first_ = Pos(1);
    --count_;
  }
  if (count_ == 0) {
    base_ += static_cast<uint32_t>(bytes_.size());
    bytes_.clear();
    start_ = 0;
    first_ = 0;
  }
}

void HpackDecoder::Insert(std::string_view name, std::string_view value) {
  const uint64_t size = uint64_t{name.size()} + value.size() + 32;
  if (size > max_size_) {
    EvictTo(0);  // §4.4: larger than the table: the table empties, nothing enters
    return;
  }
  EvictTo(max_size_ - static_cast<uint32_t>(size));
  const size_t len = name.size() + value.size();
  if (bytes_.size() + len > bytes_.capacity() && 2 * size_t{start_} >= bytes_.size()) {
    // At least half the buffer is what eviction freed at its front: reclaimed rather than
    // grown (the entries' positions count from base_, which moves with it).
    bytes_.erase(0, start_);
    base_ += start_;
    start_ = 0;
  }
  if (count_ == ring_.size()) {
    Reshape(ring_.empty() ? 8 : ring_.size() * 2);
  }
  const Entry e{base_ + static_cast<uint32_t>(bytes_.size()), static_cast<uint16_t>(name.size()),
                static_cast<uint16_t>(value.size())};
  bytes_.append(name);
  bytes_.append(value);
  ring_[Pos(count_)] = e;
  ++count_;
  size_ += static_cast<uint32_t>(size);
}

void HpackDecoder::Trim() {
  std::string().swap(name_buf_);
  std::string().swap(value_buf_);
  if (count_ == 0) {
    std::string().swap(bytes_);
    std::vector<Entry>().swap(ring_);
    return;
  }
  // The live bytes alone, and a ring no longer than it needs to be.
  std::string live = bytes_.substr(start_);
  bytes_.swap(live);
  base_ += start_;
  start_ = 0;
  size_t ring = 8;
  while (ring < count_) {
    ring *= 2;
  }
  Reshape(ring);
}

void HpackDecoder::Reshape(size_t size) {
  std::vector<Entry> ring(size);
  for (uint32_t i = 0; i < count_; ++i) {
    ring[i] = ring_[Pos(i)];
  }
  ring_.swap(ring);
  first_ = 0;
}

}  // namespace torii::http
