// http/hpack.h: HPACK header block decoding (RFC 7541), for torii's HTTP/2 codec (h2_codec.h).
//
// HpackDecoder keeps one connection's view of the peer's dynamic table and turns each header
// block into its fields, in order. The table's names and values lie end to end in one buffer
// (oldest first; what eviction frees at the front is reclaimed by moving the rest down when
// the buffer would otherwise grow), so an entry costs no allocation of its own. Huffman strings
// are decoded up to two symbols per table lookup (12 bits: every letter, digit and common
// punctuation mark is coded in 5 to 8), longer codes by their length in the canonical code;
// short ones a thread decoded lately are looked up instead (HuffmanDecodeRecent).
//
// Decoding errors (RFC 9113 §4.3: COMPRESSION_ERROR, the connection's end): an index of 0 or
// past the tables, an integer over 32 bits, a string past the block, a Huffman string with the
// EOS symbol, padding over 7 bits or padding that is not EOS's prefix, a dynamic table size
// update above the size torii allows (the default 4,096, which it never changes) or after the
// block's first field.
//
// Leaves out: what the fields may be (the codec's roles check them), encoding (h2_codec.h).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace torii::http {

class HpackDecoder {
 public:
  // Where a block's fields go. The views last until Field returns.
  class Sink {
   public:
    virtual void Field(std::string_view name, std::string_view value) = 0;

   protected:
    ~Sink() = default;
  };

  // SETTINGS_HEADER_TABLE_SIZE as torii leaves it: the most the peer may make the table.
  static constexpr uint32_t kMaxTableSize = 4096;

  // One whole header block. False on a decoding error (error() says which): the fields before
  // it were given to `sink`, and the decoder is of no further use (the connection ends).
  bool Decode(std::string_view block, Sink& sink);
  const char* error() const { return error_; }

  // The dynamic table's size as RFC 7541 §4.1 counts it, and its entries.
  uint32_t table_size() const { return size_; }
  uint32_t entries() const { return count_; }
  // Gives back what the table and the string buffers hold beyond their contents (an idle
  // connection).
  void Trim();

 private:
  struct Entry {
    uint32_t at;  // where it begins, counted from the first byte ever entered (base_)
    uint16_t name_len;
    uint16_t value_len;
  };

  bool Fail(const char* why);
  // Index `index` of the static and dynamic tables (RFC 7541 §2.3.3).
  bool Lookup(uint64_t index, std::string_view* name, std::string_view* value);
  // A string literal (§5.2) from `*p`; Huffman-coded ones are decoded into `buf`.
  bool ReadString(const uint8_t** p, const uint8_t* end, std::string* buf, std::string_view* out);
  // A literal field (§6.2): the name by index (its low `prefix` bits) or as a literal, then
  // the value.
  bool ReadLiteral(const uint8_t** p, const uint8_t* end, int prefix, bool indexing,
                   std::string_view* name, std::string_view* value);
  // §4.4: the oldest entries out until the table is at most `max`.
  void EvictTo(uint32_t max);
  // §4.4: a new entry (none, and an empty table, when it is larger than the table); `name`
  // and `value` must not point into the table.
  void Insert(std::string_view name, std::string_view value);
  // The `i`th entry from the oldest (0), where it sits in ring_.
  uint32_t Pos(uint32_t i) const {
    return (first_ + i) & (static_cast<uint32_t>(ring_.size()) - 1);
  }
  const Entry& Nth(uint32_t i) const { return ring_[Pos(count_ - 1 - i)]; }  // 0: the newest
  // The entries into a ring of `size` (a power of two, at least count_), the oldest at 0.
  void Reshape(size_t size);

  std::string bytes_;        // the entries' names and values, oldest first, from start_
  uint32_t base_ = 0;        // how many bytes the table had taken before bytes_[0] (wraps)
  std::vector<Entry> ring_;  // the entries, oldest at first_ (a power of two long)
  uint32_t start_ = 0;       // where the oldest entry begins in bytes_
  uint32_t first_ = 0;
  uint32_t count_ = 0;
  uint32_t size_ = 0;                  // §4.1: each entry's name, value and 32
  uint32_t max_size_ = kMaxTableSize;  // as the peer's last size update set it
  std::string name_buf_;               // Huffman-decoded strings of the field at hand
  std::string value_buf_;
  const char* error_ = nullptr;
};

// RFC 7541 Huffman decoding of `in`, appended to `out`; false on EOS in the string, or padding
// longer than 7 bits or not of 1 bits (the decoder's; for tests and the fuzz target).
bool HuffmanDecode(std::string_view in, std::string* out);
// The same, answered from the strings this thread decoded lately when `in` is one of them
// (short ones: what a backend repeats in every response).
bool HuffmanDecodeRecent(std::string_view in, std::string* out);

}  // namespace torii::http
