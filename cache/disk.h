// cache/disk.h: a cache's disk tier. Responses kept in one file of a fixed size, found again
// after a restart, never served torn.
//
// Owns: DiskStore, the file's format and its in-memory index. The store decides where each
// record goes and whether what a read brought back may be served; the bytes themselves move
// through the caller's io_uring (http/ reads and writes at the offsets given here), so a
// worker never blocks on the disk. The only blocking I/O here is opening the file and the
// start-up scan, on a thread of its own.
//
// Serving in place. The file is also mapped read-only: a hit whose pages are all in memory
// (mincore) is served from the mapping, with neither a read nor a copy into the process
// (MapRecord()); its body pins the record until the last send queued from it has ended, and
// the write head passes over pinned records instead of writing over them. A record not in
// memory is read through the ring as before (the read brings its pages in). A file cut short
// under the process has no page past its end in memory, so those records are read (short: a
// miss) rather than touched through the mapping; what is left is the moment between mincore
// and the decoding of a record's head, when a truncation or an eviction followed by a failing
// disk would end the process with SIGBUS (the kernel's own copies for sends fail with EFAULT).
//
// Format. Block 0 is the superblock: magic, version, file size and a random 128-bit key made
// when the file is formatted. Records follow at block-aligned offsets, each a 64-byte header
// (magic, sequence number, lengths, flags, CRC-32C of the payload, SipHash-2-4 of the header
// under the file's key), then the cache key, the response's metadata (status, header fields,
// freshness inputs, validators, Vary) and the body, zero-padded to the next block.
//
// Placement: a circular log (the write head moves forward and wraps to block 1), so eviction
// is FIFO in write order (pinned records aside: they wait for the next lap) and the file never
// grows past `size`. A record being written over is dropped from the index when its space is
// reserved, before the write is submitted. A key written again gets a new record; the old one
// is dropped from the index (its space comes back when the head reaches it).
//
// Purges outlive a restart: a tombstone record names the records a purge dropped, and the scan
// drops them again (TakeTombstone()).
//
// Restart. The scan follows the records from block 1 (each header gives the next record's
// offset), steps block by block over what is not a record (the tail of a record written over,
// never-written space, skipped as holes), keeps the newest record of each key and drops the
// older of two that overlap, and puts the write head after the newest record. Entries written
// by an earlier process come back stale: each is revalidated on its first use (its validators
// make that a 304 when the backend still has it).
//
// Crash safety. A record is indexed only after its write completed, and every read checks the
// header's SipHash (under a key no response can know: a body that imitates a header is never
// taken for one), the sequence number the index expects and the key, and then that the record
// is still indexed (its space is taken from the index before anything is written over it): a
// torn or overwritten record is a miss, and is dropped from the index. The payload's CRC-32C is
// checked on the first read of each record the scan found (what a crash may have torn); a
// record this process wrote, or already checked, is not checked again. Padding with zeros means
// no stale header survives inside a newer record.
//
// Concurrency: one mutex over the index, held for map operations only (no I/O, no parsing of
// bodies under it). Thread-safe.
//
// Leaves out: when to read or write (http/: a memory miss reads, a stored response is written
// through), freshness (policy.h), and the memory tier (store.h). Objects on disk are bounded by
// the memory tier's max_object (they pass through it).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "cache/entry.h"

namespace torii::cache {

struct DiskOptions {
  std::string path;
  uint64_t size = 0;  // bytes of the file, superblock included

  friend bool operator==(const DiskOptions&, const DiskOptions&) = default;
};

struct DiskStats {
  bool ready = false;     // the start-up scan finished
  size_t entries = 0;     // keys with a record
  uint64_t bytes = 0;     // space their records take (block-aligned)
  uint64_t capacity = 0;  // space for records (size less the superblock)
  uint64_t loaded = 0;    // records the start-up scan found
  uint64_t hits = 0;      // reads that gave an entry
  uint64_t misses = 0;    // Find() calls without a record
  uint64_t writes = 0;    // records written
  uint64_t write_errors = 0;
  uint64_t corrupt = 0;  // reads refused: torn, overwritten or not the key's
  uint64_t mapped = 0;   // hits served in place from the file's mapping (MapRecord())
  size_t pinned = 0;     // records held in place now by the bodies served from them
};

// Where a record lies (Find()): the reader reads head_len bytes at `offset` into one buffer
// and body_len bytes after them into another, and hands both to Decode().
struct DiskRecord {
  uint64_t offset = 0;
  uint64_t seq = 0;
  uint32_t head_len = 0;
  uint64_t body_len = 0;
  bool verified = false;  // its CRC need not be checked again (Decode())
};

// What MapRecord() found: a hit (entry), a miss (neither), or a record to read instead (read).
struct MappedRecord {
  std::shared_ptr<Entry> entry;
  bool read = false;
};

// One record to write (PrepareWrite()): `head`, then `body`, then `padding` zero bytes
// (ZeroPadding()) at `offset`, as one vectored write. Report its end with Written().
struct DiskWrite {
  uint64_t offset = 0;
  uint64_t seq = 0;
  std::string head;
  Body body;
  size_t padding = 0;
  size_t total() const { return head.size() + (body ? body->size() : 0) + padding; }
};

class DiskStore : public std::enable_shared_from_this<DiskStore> {
 public:
  static constexpr size_t kBlock = 4096;
  static constexpr size_t kHeaderSize = 64;
  static constexpr uint64_t kMinSize = uint64_t{1} << 20;
  static constexpr size_t kMaxKey = 16 * 1024;
  static constexpr size_t kMaxMeta = 1024 * 1024;

  // The keyed hash the index uses for keys and tags (the caller's, so it is the one every
  // other table of the process uses; it need not be stable across processes).
  using KeyHash = uint64_t (*)(std::string_view);

  // Opens (creating or formatting when needed) `options.path`, locked against another process,
  // and starts the scan of what it holds. nullptr with `error` set when the file cannot be
  // used. Until the scan is done, Find() misses and PrepareWrite() declines.
  static std::shared_ptr<DiskStore> Open(const DiskOptions& options, KeyHash hash,
                                         std::string* error);
  ~DiskStore();
  DiskStore(const DiskStore&) = delete;
  DiskStore& operator=(const DiskStore&) = delete;

  int fd() const { return fd_; }
  const DiskOptions& options() const { return options_; }
  bool ready() const { return ready_.load(std::memory_order_acquire); }
  // Blocks until the start-up scan is done (tests, benchmarks).
  void WaitReady();

  // The record of `key`, if one is indexed (counts a miss when not).
  std::optional<DiskRecord> Find(std::string_view key);

  // The entry a read of `rec` brought back (`head`: its head_len bytes; `body`: its body_len
  // bytes, adopted as the entry's body), or nullptr when the record is torn, was written over
  // or dropped since Find(), or is not `key`'s: it is then dropped from the index. An entry of
  // a record marked stale comes back stale at `now` (its freshness lifetime cut to its age).
  std::shared_ptr<Entry> Decode(std::string_view key, const DiskRecord& rec, std::string_view head,
                                Body body, int64_t now);

  // `rec` served in place from the file's mapping (no read, no copy): the entry as Decode()
  // gives it, its body a borrowed view of the record that keeps it pinned — the write head
  // passes over a pinned record instead of writing over it — until the last copy of the body
  // (the sends queued from it) is gone. `read` instead when the file could not be mapped or a
  // page of the record is not in memory: the caller reads it through its ring (a worker never
  // waits for the disk; the read brings the pages in). Neither: a miss, as Decode() says.
  MappedRecord MapRecord(std::string_view key, const DiskRecord& rec, int64_t now);

  // Reserves space for `entry` under `key` at the write head and serialises its head. Declines
  // (nullopt) before the scan is done, for a compressed variant (coding != 0: they are made
  // again from the identity entry), for a record larger than a quarter of the file, and when
  // pinned records leave no room for it.
  std::optional<DiskWrite> PrepareWrite(std::string_view key, const Entry& entry);
  // The write of `w` ended: indexed when `ok` (unless its space was reserved again meanwhile),
  // else forgotten.
  void Written(const DiskWrite& w, bool ok);

  // Drops `key`'s record (invalidation, PURGE). True if there was one.
  bool Remove(std::string_view key);
  // Purge by tag: drops (or, `soft`, marks stale) every record carrying one of `tags`.
  // Returns how many. O(records).
  size_t PurgeTags(std::span<const std::string> tags, bool soft);
  // A record dropped by Remove() or a hard PurgeTags() is still on disk: a tombstone (a record
  // naming the dropped ones by offset and sequence number) keeps a restart from finding it
  // again. The caller writes what this returns (nullopt: nothing pending) like any record,
  // after each Remove() or PurgeTags(). A tombstone is newer than every record it names, so
  // the log writes over them before it: it never outlives its use. One that is lost (a failed
  // write, a crash first) lets its records come back stale: revalidated before use.
  std::optional<DiskWrite> TakeTombstone();

  DiskStats Stats() const;

  // kBlock zero bytes: where a write's padding comes from.
  static const char* ZeroPadding();

  // The serialised form of an entry's metadata and its inverse (exposed for tests and the
  // fuzz target: Decode() reads bytes from the disk). DecodeMeta returns false on anything
  // malformed, leaving `out` partly filled.
  static void EncodeMeta(const Entry& entry, std::string* out);
  static bool DecodeMeta(std::string_view in, Entry* out);

 private:
  struct Rec {
    uint64_t hash = 0;
    uint64_t seq = 0;
    uint32_t head_len = 0;
    uint64_t body_len = 0;
    uint64_t extent = 0;  // block-aligned length
    bool committed = false;
    bool stale = false;
    bool verified = false;       // written by this process, or its CRC checked once since the scan
    std::vector<uint64_t> tags;  // hashes of the Cache-Tag / Surrogate-Key values
  };
  using Map = std::map<uint64_t, Rec>;  // by offset

  DiskStore(const DiskOptions& options, KeyHash hash, int fd, uint64_t k0, uint64_t k1);
  void Scan();
  // Drops the record at `it` from both maps (mu_ held). Returns the next one. `dead`: it is
  // still intact on disk, so the next tombstone names it.
  Map::iterator DropLocked(Map::iterator it, bool dead = false);
  // Reserves `extent` bytes at the write head for a record of sequence number `*seq` (mu_ held),
  // past any pinned record; nullopt when pinned records leave no such space.
  std::optional<uint64_t> ReserveLocked(uint64_t extent, uint64_t* seq);
  // A record held in place while a body served from the mapping lives (MapRecord()).
  struct Pin {
    uint64_t end = 0;  // offset + extent
    uint32_t count = 0;
  };
  class PinHolder;
  void Unpin(uint64_t offset);
  std::shared_ptr<Entry> DecodeAs(std::string_view key, const DiskRecord& rec,
                                  std::string_view head, Body body, int64_t now, bool mapped);
  void TagHashes(std::span<const Header> headers, std::vector<uint64_t>* out) const;
  uint64_t HeaderMac(const unsigned char* header) const;

  const DiskOptions options_;
  const KeyHash hash_;
  const int fd_;
  const uint64_t k0_;
  const uint64_t k1_;

  char* map_ = nullptr;  // the whole file, read-only (nullptr: not mapped, MapRecord() says read)
  size_t page_ = 4096;

  mutable std::mutex mu_;
  Map by_offset_;
  std::map<uint64_t, Pin> pins_;  // by offset; disjoint (only indexed records are pinned)
  std::unordered_map<uint64_t, uint64_t> by_hash_;  // key hash → offset of its committed record
  uint64_t head_ = kBlock;                          // where the next record goes
  uint64_t next_seq_ = 1;
  uint64_t boot_seq_ = 1;  // records below it were written by an earlier process
  uint64_t bytes_ = 0;
  std::vector<std::pair<uint64_t, uint64_t>> dead_;  // (offset, seq) for the next tombstone
  DiskStats counts_;  // hits, misses, writes, write_errors, corrupt, loaded

  std::atomic<bool> ready_{false};
  std::atomic<bool> stop_{false};
  std::condition_variable ready_cv_;
  std::thread scanner_;
};

}  // namespace torii::cache
