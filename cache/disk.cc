// cache/disk.cc: see disk.h.
#include "cache/disk.h"

#include <fcntl.h>
#include <isa-l/crc.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "base/siphash.h"
#include "cache/policy.h"
#include "cache/tags.h"

namespace torii::cache {

namespace {

constexpr char kSuperMagic[8] = {'T', 'O', 'R', 'I', 'I', 'D', 'S', 'K'};
constexpr char kRecordMagic[8] = {'T', 'O', 'R', 'I', 'I', 'R', 'C', '1'};
constexpr uint32_t kVersion = 1;
constexpr size_t kSuperSize = 48;  // what the superblock's checksum covers, and the checksum
constexpr size_t kMacAt = DiskStore::kHeaderSize - 8;
constexpr uint32_t kTombstone = 1;  // header flag: the metadata lists (offset, seq) pairs

uint64_t AlignUp(uint64_t n) {
  return (n + DiskStore::kBlock - 1) / DiskStore::kBlock * DiskStore::kBlock;
}

// Little-endian fields (the hosts torii runs on are; memcpy keeps the accesses unaligned-safe).
template <class T>
void PutAt(unsigned char* p, T v) {
  std::memcpy(p, &v, sizeof v);
}
template <class T>
T GetAt(const unsigned char* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

uint32_t Crc(std::string_view bytes, uint32_t crc) {
  return crc32_iscsi(reinterpret_cast<unsigned char*>(const_cast<char*>(bytes.data())),
                     static_cast<int>(bytes.size()), crc);
}
uint32_t CrcOf(std::string_view a, std::string_view b) {
  // ISA-L takes an int length: feed large bodies in pieces.
  uint32_t crc = Crc(a, 0);
  constexpr size_t kPiece = size_t{1} << 30;
  for (size_t at = 0; at < b.size(); at += kPiece) {
    crc = Crc(b.substr(at, kPiece), crc);
  }
  return crc;
}

// The fields of a record header (disk.h's Format).
struct RecordHeader {
  uint64_t seq = 0;
  uint32_t key_len = 0;
  uint32_t meta_len = 0;
  uint64_t body_len = 0;
  uint32_t crc = 0;
  uint32_t flags = 0;  // kTombstone
  uint64_t head_len() const { return DiskStore::kHeaderSize + key_len + meta_len; }
};

void FillHeader(const RecordHeader& r, unsigned char* p) {
  std::memset(p, 0, DiskStore::kHeaderSize);
  std::memcpy(p, kRecordMagic, 8);
  PutAt<uint64_t>(p + 8, r.seq);
  PutAt<uint32_t>(p + 16, r.key_len);
  PutAt<uint32_t>(p + 20, r.meta_len);
  PutAt<uint64_t>(p + 24, r.body_len);
  PutAt<uint32_t>(p + 32, r.crc);
  PutAt<uint32_t>(p + 36, r.flags);
}

RecordHeader ReadHeader(const unsigned char* p) {
  RecordHeader r;
  r.seq = GetAt<uint64_t>(p + 8);
  r.key_len = GetAt<uint32_t>(p + 16);
  r.meta_len = GetAt<uint32_t>(p + 20);
  r.body_len = GetAt<uint64_t>(p + 24);
  r.crc = GetAt<uint32_t>(p + 32);
  r.flags = GetAt<uint32_t>(p + 36);
  return r;
}

// Metadata serialisation.
void PutInt(std::string* out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) {
    out->push_back(static_cast<char>(v >> (8 * i)));
  }
}
void PutStr(std::string* out, std::string_view s) {
  PutInt(out, s.size(), 4);
  out->append(s);
}

struct Reader {
  std::string_view in;
  size_t at = 0;
  bool ok = true;
  uint64_t Int(int bytes) {
    if (!ok || in.size() - at < static_cast<size_t>(bytes)) {
      ok = false;
      return 0;
    }
    uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) {
      v |= uint64_t{static_cast<unsigned char>(in[at + i])} << (8 * i);
    }
    at += bytes;
    return v;
  }
  std::string Str() {
    const uint64_t n = Int(4);
    if (!ok || in.size() - at < n) {
      ok = false;
      return {};
    }
    std::string s(in.substr(at, n));
    at += n;
    return s;
  }
  // A count of elements of at least `min_bytes` each: never more than the bytes left allow.
  uint64_t Count(size_t min_bytes) {
    const uint64_t n = Int(4);
    if (ok && n > (in.size() - at) / min_bytes) {
      ok = false;
    }
    return ok ? n : 0;
  }
};

}  // namespace

const char* DiskStore::ZeroPadding() {
  static const char zeros[kBlock] = {};
  return zeros;
}

void DiskStore::EncodeMeta(const Entry& e, std::string* out) {
  PutInt(out, e.status, 2);
  for (int64_t t :
       {e.request_time, e.response_time, e.date_value, e.age_value, e.freshness_lifetime}) {
    PutInt(out, static_cast<uint64_t>(t), 8);
  }
  PutInt(out, (e.heuristic ? 1u : 0u) | (e.vary_star ? 2u : 0u), 1);
  const CacheControl& cc = e.cc;
  const std::optional<uint32_t>* values[] = {
      &cc.max_age,       &cc.s_maxage, &cc.max_stale, &cc.min_fresh, &cc.stale_while_revalidate,
      &cc.stale_if_error};
  unsigned present = 0;
  for (size_t i = 0; i < std::size(values); ++i) {
    present |= values[i]->has_value() ? 1u << i : 0u;
  }
  PutInt(out, present, 1);
  for (const std::optional<uint32_t>* v : values) {
    if (v->has_value()) {
      PutInt(out, **v, 4);
    }
  }
  const bool flags[] = {cc.max_stale_any,  cc.no_store,        cc.no_cache,         cc.private_,
                        cc.public_,        cc.must_revalidate, cc.proxy_revalidate, cc.no_transform,
                        cc.only_if_cached, cc.immutable,       cc.targeted};
  unsigned bits = 0;
  for (size_t i = 0; i < std::size(flags); ++i) {
    bits |= flags[i] ? 1u << i : 0u;
  }
  PutInt(out, bits, 2);
  PutStr(out, e.etag);
  PutStr(out, e.last_modified);
  PutInt(out, e.vary.size(), 4);
  for (const Entry::VaryField& v : e.vary) {
    PutStr(out, v.name);
    PutStr(out, v.value);
    PutInt(out, v.has_value ? 1 : 0, 1);
  }
  PutInt(out, e.headers.size(), 4);
  for (const Header& h : e.headers) {
    PutStr(out, h.name);
    PutStr(out, h.value);
  }
}

bool DiskStore::DecodeMeta(std::string_view in, Entry* e) {
  Reader r{in};
  e->status = static_cast<uint16_t>(r.Int(2));
  for (int64_t* t : {&e->request_time, &e->response_time, &e->date_value, &e->age_value,
                     &e->freshness_lifetime}) {
    *t = static_cast<int64_t>(r.Int(8));
  }
  const uint64_t eflags = r.Int(1);
  e->heuristic = (eflags & 1) != 0;
  e->vary_star = (eflags & 2) != 0;
  CacheControl& cc = e->cc;
  std::optional<uint32_t>* values[] = {
      &cc.max_age,       &cc.s_maxage, &cc.max_stale, &cc.min_fresh, &cc.stale_while_revalidate,
      &cc.stale_if_error};
  const uint64_t present = r.Int(1);
  for (size_t i = 0; i < std::size(values); ++i) {
    if (present & (1u << i)) {
      *values[i] = static_cast<uint32_t>(r.Int(4));
    }
  }
  bool* flags[] = {&cc.max_stale_any,  &cc.no_store,        &cc.no_cache,         &cc.private_,
                   &cc.public_,        &cc.must_revalidate, &cc.proxy_revalidate, &cc.no_transform,
                   &cc.only_if_cached, &cc.immutable,       &cc.targeted};
  const uint64_t bits = r.Int(2);
  for (size_t i = 0; i < std::size(flags); ++i) {
    *flags[i] = (bits & (1u << i)) != 0;
  }
  e->etag = r.Str();
  e->last_modified = r.Str();
  const uint64_t vary = r.Count(9);
  for (uint64_t i = 0; i < vary && r.ok; ++i) {
    Entry::VaryField v;
    v.name = r.Str();
    v.value = r.Str();
    v.has_value = r.Int(1) != 0;
    e->vary.push_back(std::move(v));
  }
  const uint64_t headers = r.Count(8);
  for (uint64_t i = 0; i < headers && r.ok; ++i) {
    Header h;
    h.name = r.Str();
    h.value = r.Str();
    e->headers.push_back(std::move(h));
  }
  return r.ok && r.at == in.size();
}

std::shared_ptr<DiskStore> DiskStore::Open(const DiskOptions& options, KeyHash hash,
                                           std::string* error) {
  const uint64_t size = options.size / kBlock * kBlock;
  if (size < kMinSize) {
    *error = "disk cache " + options.path + ": size below 1MiB";
    return nullptr;
  }
  const int fd = ::open(options.path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    *error = "disk cache " + options.path + ": " + std::strerror(errno);
    return nullptr;
  }
  auto fail = [&](const std::string& why) -> std::shared_ptr<DiskStore> {
    *error = "disk cache " + options.path + ": " + why;
    ::close(fd);
    return nullptr;
  };
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    return fail("not a regular file");
  }
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    return fail(errno == EWOULDBLOCK ? "in use by another process" : std::strerror(errno));
  }
  unsigned char sb[kSuperSize] = {};
  const ssize_t n = pread(fd, sb, sizeof sb, 0);
  const uint64_t sum = base::SipHash<2, 4>(0, 0, sb, kSuperSize - 8);
  uint64_t k0 = GetAt<uint64_t>(sb + 24);
  uint64_t k1 = GetAt<uint64_t>(sb + 32);
  const bool valid = n == static_cast<ssize_t>(sizeof sb) && std::memcmp(sb, kSuperMagic, 8) == 0 &&
                     GetAt<uint32_t>(sb + 8) == kVersion && GetAt<uint32_t>(sb + 12) == kBlock &&
                     GetAt<uint64_t>(sb + 16) == size &&
                     GetAt<uint64_t>(sb + kSuperSize - 8) == sum &&
                     static_cast<uint64_t>(st.st_size) == size;
  if (!valid) {
    // New, another size, or not ours: formatted (every record it held is gone) with a new key.
    uint64_t keys[2];
    if (getrandom(keys, sizeof keys, 0) != static_cast<ssize_t>(sizeof keys)) {
      return fail(std::string("getrandom: ") + std::strerror(errno));
    }
    k0 = keys[0];
    k1 = keys[1];
    std::memcpy(sb, kSuperMagic, 8);
    PutAt<uint32_t>(sb + 8, kVersion);
    PutAt<uint32_t>(sb + 12, kBlock);
    PutAt<uint64_t>(sb + 16, size);
    PutAt<uint64_t>(sb + 24, k0);
    PutAt<uint64_t>(sb + 32, k1);
    PutAt<uint64_t>(sb + kSuperSize - 8, base::SipHash<2, 4>(0, 0, sb, kSuperSize - 8));
    if (ftruncate(fd, 0) != 0 || ftruncate(fd, static_cast<off_t>(size)) != 0) {
      return fail(std::string("cannot size the file: ") + std::strerror(errno));
    }
    if (pwrite(fd, sb, sizeof sb, 0) != static_cast<ssize_t>(sizeof sb) || fdatasync(fd) != 0) {
      return fail(std::string("cannot write its superblock: ") + std::strerror(errno));
    }
  }
  DiskOptions opened = options;
  opened.size = size;
  std::shared_ptr<DiskStore> store(new DiskStore(opened, hash, fd, k0, k1));
  // Hits are served from this mapping where their pages are in memory (MapRecord()); without it,
  // every hit is read.
  if (void* m = mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0); m != MAP_FAILED) {
    store->map_ = static_cast<char*>(m);
    store->page_ = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  }
  store->scanner_ = std::thread([s = store.get()] { s->Scan(); });
  return store;
}

DiskStore::DiskStore(const DiskOptions& options, KeyHash hash, int fd, uint64_t k0, uint64_t k1)
    : options_(options), hash_(hash), fd_(fd), k0_(k0), k1_(k1) {}

DiskStore::~DiskStore() {
  stop_.store(true, std::memory_order_relaxed);
  if (scanner_.joinable()) {
    scanner_.join();
  }
  if (map_ != nullptr) {
    munmap(map_, options_.size);
  }
  ::close(fd_);  // also releases the lock
}

void DiskStore::WaitReady() {
  std::unique_lock lock(mu_);
  ready_cv_.wait(lock, [&] { return ready(); });
}

uint64_t DiskStore::HeaderMac(const unsigned char* header) const {
  return base::SipHash<2, 4>(k0_, k1_, header, kMacAt);
}

void DiskStore::TagHashes(std::span<const Header> headers, std::vector<uint64_t>* out) const {
  std::vector<std::string_view> tags;
  TagsOf(headers, &tags);
  for (std::string_view t : tags) {
    out->push_back(hash_(t));
  }
}

void DiskStore::Scan() {
  struct Found {
    uint64_t offset;
    Rec rec;
    std::vector<std::pair<uint64_t, uint64_t>> kills;  // a tombstone's (offset, seq) pairs
    bool tombstone = false;
  };
  std::vector<Found> found;
  const uint64_t size = options_.size;
  std::string block(kBlock, '\0');
  std::string head;
  uint64_t off = kBlock;
  while (off < size && !stop_.load(std::memory_order_relaxed)) {
    // Never-written space is a hole: skipped without reading it.
    const off_t data = lseek(fd_, static_cast<off_t>(off), SEEK_DATA);
    if (data < 0 && errno == ENXIO) {
      break;
    }
    // (Data starting inside this block, on a file system of smaller blocks: read it.)
    if (data > static_cast<off_t>(off) && static_cast<uint64_t>(data) / kBlock * kBlock > off) {
      off = static_cast<uint64_t>(data) / kBlock * kBlock;
      continue;
    }
    const ssize_t n = pread(fd_, block.data(), kBlock, static_cast<off_t>(off));
    if (n < static_cast<ssize_t>(kHeaderSize)) {
      break;
    }
    const auto* p = reinterpret_cast<const unsigned char*>(block.data());
    const RecordHeader r = ReadHeader(p);
    const bool header_ok = std::memcmp(p, kRecordMagic, 8) == 0 &&
                           GetAt<uint64_t>(p + kMacAt) == HeaderMac(p) && r.key_len <= kMaxKey &&
                           r.meta_len <= kMaxMeta && r.body_len <= size &&
                           r.head_len() + r.body_len <= size - off;
    if (!header_ok) {
      off += kBlock;
      continue;
    }
    if (r.head_len() <= static_cast<uint64_t>(n)) {
      head.assign(block, 0, r.head_len());
    } else {
      head.resize(r.head_len());
      if (pread(fd_, head.data(), head.size(), static_cast<off_t>(off)) !=
          static_cast<ssize_t>(head.size())) {
        off += kBlock;
        continue;
      }
    }
    const std::string_view key = std::string_view(head).substr(kHeaderSize, r.key_len);
    const std::string_view meta_bytes = std::string_view(head).substr(kHeaderSize + r.key_len);
    Entry meta;
    const uint64_t extent = AlignUp(r.head_len() + r.body_len);
    if (r.flags == kTombstone) {
      // Acted on only when whole (its CRC): a torn one names nothing.
      if (r.key_len == 0 && r.body_len == 0 && r.meta_len % 16 == 0 &&
          CrcOf(std::string_view(head).substr(kHeaderSize), {}) == r.crc) {
        Found f{off, Rec{}, {}, true};
        f.rec.seq = r.seq;
        f.rec.extent = extent;
        const auto* m = reinterpret_cast<const unsigned char*>(meta_bytes.data());
        for (size_t i = 0; i < meta_bytes.size(); i += 16) {
          f.kills.emplace_back(GetAt<uint64_t>(m + i), GetAt<uint64_t>(m + i + 8));
        }
        found.push_back(std::move(f));
      }
    } else if (r.flags == 0 && DecodeMeta(meta_bytes, &meta)) {
      Rec rec;
      rec.hash = hash_(key);
      rec.seq = r.seq;
      rec.head_len = static_cast<uint32_t>(r.head_len());
      rec.body_len = r.body_len;
      rec.extent = extent;
      rec.committed = true;
      TagHashes(meta.headers, &rec.tags);
      found.push_back(Found{off, std::move(rec), {}, false});
    }
    off += extent;
  }
  // Newest first: a record survives unless a newer one of its key, or a newer one overlapping
  // it, was kept before it.
  std::sort(found.begin(), found.end(),
            [](const Found& a, const Found& b) { return a.rec.seq > b.rec.seq; });
  std::map<uint64_t, uint64_t> taken;  // offset → end of every record and tombstone kept
  Map kept;
  std::unordered_map<uint64_t, uint64_t> keys;
  std::vector<const Found*> tombstones;
  for (Found& f : found) {
    if (!f.tombstone && keys.contains(f.rec.hash)) {
      continue;
    }
    auto next = taken.lower_bound(f.offset);
    if (next != taken.end() && next->first < f.offset + f.rec.extent) {
      continue;
    }
    if (next != taken.begin() && std::prev(next)->second > f.offset) {
      continue;
    }
    taken.emplace(f.offset, f.offset + f.rec.extent);
    if (f.tombstone) {
      tombstones.push_back(&f);
      continue;
    }
    keys.emplace(f.rec.hash, f.offset);
    kept.emplace(f.offset, std::move(f.rec));
  }
  // What a purge dropped stays dropped (a tombstone is newer than what it names).
  for (const Found* t : tombstones) {
    for (const auto& [offset, seq] : t->kills) {
      auto it = kept.find(offset);
      if (it != kept.end() && it->second.seq == seq) {
        keys.erase(it->second.hash);
        kept.erase(it);
      }
    }
  }
  uint64_t bytes = 0;
  for (const auto& [offset, rec] : kept) {
    bytes += rec.extent;
  }
  std::lock_guard lock(mu_);
  if (!found.empty()) {
    const Found& newest = found.front();
    head_ = newest.offset + newest.rec.extent;
    if (head_ >= size) {
      head_ = kBlock;
    }
    next_seq_ = newest.rec.seq + 1;
  }
  boot_seq_ = next_seq_;
  by_offset_ = std::move(kept);
  by_hash_ = std::move(keys);
  bytes_ = bytes;
  counts_.loaded = by_hash_.size();
  ready_.store(true, std::memory_order_release);
  ready_cv_.notify_all();
}

DiskStore::Map::iterator DiskStore::DropLocked(Map::iterator it, bool dead) {
  if (dead && it->second.committed) {
    dead_.emplace_back(it->first, it->second.seq);
  }
  auto k = by_hash_.find(it->second.hash);
  if (k != by_hash_.end() && k->second == it->first) {
    by_hash_.erase(k);
  }
  bytes_ -= it->second.extent;
  return by_offset_.erase(it);
}

std::optional<DiskRecord> DiskStore::Find(std::string_view key) {
  if (!ready()) {
    return std::nullopt;
  }
  const uint64_t h = hash_(key);
  std::lock_guard lock(mu_);
  auto k = by_hash_.find(h);
  if (k == by_hash_.end()) {
    counts_.misses++;
    return std::nullopt;
  }
  const Rec& r = by_offset_.at(k->second);
  return DiskRecord{k->second, r.seq, r.head_len, r.body_len, r.verified};
}

std::shared_ptr<Entry> DiskStore::Decode(std::string_view key, const DiskRecord& rec,
                                         std::string_view head, Body body, int64_t now) {
  return DecodeAs(key, rec, head, std::move(body), now, /*mapped=*/false);
}

std::shared_ptr<Entry> DiskStore::DecodeAs(std::string_view key, const DiskRecord& rec,
                                           std::string_view head, Body body, int64_t now,
                                           bool mapped) {
  auto entry = std::make_shared<Entry>();
  bool ok = head.size() == rec.head_len && head.size() >= kHeaderSize && body &&
            body->size() == rec.body_len;
  if (ok) {
    const auto* p = reinterpret_cast<const unsigned char*>(head.data());
    const RecordHeader r = ReadHeader(p);
    ok = std::memcmp(p, kRecordMagic, 8) == 0 && GetAt<uint64_t>(p + kMacAt) == HeaderMac(p) &&
         r.flags == 0 && r.seq == rec.seq && r.head_len() == rec.head_len &&
         r.body_len == rec.body_len && head.substr(kHeaderSize, r.key_len) == key &&
         (rec.verified || CrcOf(head.substr(kHeaderSize), *body) == r.crc) &&
         DecodeMeta(head.substr(kHeaderSize + r.key_len), entry.get());
  }
  bool stale = false;  // written by an earlier process, or soft-purged: revalidate first
  {
    std::lock_guard lock(mu_);
    auto it = by_offset_.find(rec.offset);
    const bool indexed = it != by_offset_.end() && it->second.seq == rec.seq;
    if (!indexed) {
      return nullptr;  // written over or dropped since Find(): a plain miss
    }
    if (!ok) {
      counts_.corrupt++;
      DropLocked(it);
      return nullptr;
    }
    counts_.hits++;
    counts_.mapped += mapped ? 1 : 0;
    it->second.verified = true;
    stale = it->second.stale || rec.seq < boot_seq_;
  }
  if (stale) {
    entry->freshness_lifetime = std::min(entry->freshness_lifetime, CurrentAge(*entry, now));
  }
  entry->body = std::move(body);
  // Its record's identity (top bit: never one Store::Insert gives), so what is derived from one
  // version of a key (compressed variants) is not taken for another's.
  entry->id = (uint64_t{1} << 63) | rec.seq;
  return entry;
}

// Unpins its record when the last body served from it is gone.
class DiskStore::PinHolder {
 public:
  PinHolder(std::shared_ptr<DiskStore> store, uint64_t offset)
      : store_(std::move(store)), offset_(offset) {}
  ~PinHolder() { store_->Unpin(offset_); }
  PinHolder(const PinHolder&) = delete;
  PinHolder& operator=(const PinHolder&) = delete;

 private:
  std::shared_ptr<DiskStore> store_;
  uint64_t offset_;
};

MappedRecord DiskStore::MapRecord(std::string_view key, const DiskRecord& rec, int64_t now) {
  const uint64_t len = uint64_t{rec.head_len} + rec.body_len;
  if (map_ == nullptr || rec.offset < kBlock || len > options_.size - rec.offset) {
    return MappedRecord{nullptr, /*read=*/true};
  }
  // Resident? A page that is not would be read by the send that touches it, in the worker.
  const uint64_t first = rec.offset / page_ * page_;
  const uint64_t pages = (rec.offset + len - first + page_ - 1) / page_;
  unsigned char in_core[64];
  for (uint64_t at = 0; at < pages; at += sizeof in_core) {
    const uint64_t n = std::min<uint64_t>(sizeof in_core, pages - at);
    if (mincore(map_ + first + at * page_, n * page_, in_core) != 0) {
      return MappedRecord{nullptr, /*read=*/true};
    }
    for (uint64_t i = 0; i < n; ++i) {
      if ((in_core[i] & 1) == 0) {
        return MappedRecord{nullptr, /*read=*/true};
      }
    }
  }
  {
    // Pinned only while still indexed as Find() saw it: from here on, no reservation covers it.
    std::lock_guard lock(mu_);
    auto it = by_offset_.find(rec.offset);
    if (it == by_offset_.end() || it->second.seq != rec.seq || !it->second.committed) {
      return MappedRecord{};  // written over or dropped since Find(): a miss
    }
    Pin& pin = pins_[rec.offset];
    pin.end = rec.offset + it->second.extent;
    pin.count++;
  }
  auto holder = std::make_shared<const PinHolder>(shared_from_this(), rec.offset);
  const std::string_view bytes(map_ + rec.offset, len);
  return MappedRecord{DecodeAs(key, rec, bytes.substr(0, rec.head_len),
                               Body(bytes.substr(rec.head_len), std::move(holder)), now,
                               /*mapped=*/true)};
}

void DiskStore::Unpin(uint64_t offset) {
  std::lock_guard lock(mu_);
  auto it = pins_.find(offset);
  if (it != pins_.end() && --it->second.count == 0) {
    pins_.erase(it);
  }
}

std::optional<DiskWrite> DiskStore::PrepareWrite(std::string_view key, const Entry& entry) {
  if (!ready() || entry.coding != 0 || key.size() > kMaxKey) {
    return std::nullopt;
  }
  DiskWrite w;
  w.head.resize(kHeaderSize);
  w.head.append(key);
  EncodeMeta(entry, &w.head);
  RecordHeader r;
  r.key_len = static_cast<uint32_t>(key.size());
  const size_t meta_len = w.head.size() - kHeaderSize - key.size();
  if (meta_len > kMaxMeta) {
    return std::nullopt;
  }
  r.meta_len = static_cast<uint32_t>(meta_len);
  w.body = entry.body;
  r.body_len = w.body ? w.body->size() : 0;
  const uint64_t total = w.head.size() + r.body_len;
  const uint64_t extent = AlignUp(total);
  if (extent > (options_.size - kBlock) / 4) {
    return std::nullopt;
  }
  r.crc = CrcOf(std::string_view(w.head).substr(kHeaderSize),
                w.body ? std::string_view(*w.body) : std::string_view());
  Rec rec;
  rec.hash = hash_(key);
  rec.head_len = static_cast<uint32_t>(w.head.size());
  rec.body_len = r.body_len;
  rec.extent = extent;
  TagHashes(entry.headers, &rec.tags);
  {
    std::lock_guard lock(mu_);
    const std::optional<uint64_t> at = ReserveLocked(extent, &w.seq);
    if (!at) {
      return std::nullopt;
    }
    w.offset = *at;
    rec.seq = w.seq;
    bytes_ += extent;
    by_offset_.emplace(w.offset, std::move(rec));
  }
  r.seq = w.seq;
  auto* p = reinterpret_cast<unsigned char*>(w.head.data());
  FillHeader(r, p);
  PutAt<uint64_t>(p + kMacAt, HeaderMac(p));
  w.padding = extent - total;
  return w;
}

std::optional<uint64_t> DiskStore::ReserveLocked(uint64_t extent, uint64_t* seq) {
  // Past the pinned records in the way: at most once around the file.
  uint64_t passed = 0;
  for (;;) {
    if (head_ + extent > options_.size) {
      passed += options_.size - head_;
      head_ = kBlock;  // wrap: the tail past the head keeps its records until the head returns
    }
    auto p = pins_.lower_bound(head_);
    if (p != pins_.begin() && std::prev(p)->second.end > head_) {
      --p;
    }
    if (p == pins_.end() || p->first >= head_ + extent) {
      break;
    }
    passed += p->second.end - head_;
    head_ = p->second.end;
    if (passed > options_.size) {
      return std::nullopt;
    }
  }
  auto it = by_offset_.lower_bound(head_);
  if (it != by_offset_.begin()) {
    auto prev = std::prev(it);
    if (prev->first + prev->second.extent > head_) {
      DropLocked(prev);
    }
  }
  while (it != by_offset_.end() && it->first < head_ + extent) {
    it = DropLocked(it);
  }
  const uint64_t offset = head_;
  *seq = next_seq_++;
  head_ += extent;
  if (head_ >= options_.size) {
    head_ = kBlock;
  }
  return offset;
}

std::optional<DiskWrite> DiskStore::TakeTombstone() {
  DiskWrite w;
  RecordHeader r;
  {
    std::lock_guard lock(mu_);
    if (dead_.empty()) {
      return std::nullopt;
    }
    // As many as one record's metadata holds; the rest go in the next one.
    const size_t n = std::min(dead_.size(), kMaxMeta / 16);
    w.head.resize(kHeaderSize + n * 16);
    auto* m = reinterpret_cast<unsigned char*>(w.head.data() + kHeaderSize);
    for (size_t i = 0; i < n; ++i) {
      PutAt<uint64_t>(m + 16 * i, dead_[i].first);
      PutAt<uint64_t>(m + 16 * i + 8, dead_[i].second);
    }
    const uint64_t extent = AlignUp(w.head.size());
    const std::optional<uint64_t> at = ReserveLocked(extent, &w.seq);
    if (!at) {
      return std::nullopt;  // the records stay named for the next one
    }
    dead_.erase(dead_.begin(), dead_.begin() + static_cast<ptrdiff_t>(n));
    w.offset = *at;
    w.padding = extent - w.head.size();
  }
  r.seq = w.seq;
  r.meta_len = static_cast<uint32_t>(w.head.size() - kHeaderSize);
  r.flags = kTombstone;
  r.crc = CrcOf(std::string_view(w.head).substr(kHeaderSize), {});
  auto* p = reinterpret_cast<unsigned char*>(w.head.data());
  FillHeader(r, p);
  PutAt<uint64_t>(p + kMacAt, HeaderMac(p));
  return w;
}

void DiskStore::Written(const DiskWrite& w, bool ok) {
  std::lock_guard lock(mu_);
  auto it = by_offset_.find(w.offset);
  if (!ok) {
    counts_.write_errors++;
  } else {
    counts_.writes++;
  }
  if (it == by_offset_.end() || it->second.seq != w.seq) {
    return;  // its space was reserved again while it was written
  }
  if (!ok) {
    DropLocked(it);
    return;
  }
  Rec& rec = it->second;
  rec.committed = true;
  rec.verified = true;  // written whole by this process: nothing can have torn it
  auto [k, inserted] = by_hash_.try_emplace(rec.hash, w.offset);
  if (!inserted) {
    auto old = by_offset_.find(k->second);
    if (old->second.seq > rec.seq) {
      DropLocked(it);  // a newer record of the key finished first
      return;
    }
    k->second = w.offset;
    bytes_ -= old->second.extent;
    by_offset_.erase(old);
  }
}

bool DiskStore::Remove(std::string_view key) {
  const uint64_t h = hash_(key);
  std::lock_guard lock(mu_);
  auto k = by_hash_.find(h);
  if (k == by_hash_.end()) {
    return false;
  }
  DropLocked(by_offset_.find(k->second), /*dead=*/true);
  return true;
}

size_t DiskStore::PurgeTags(std::span<const std::string> tags, bool soft) {
  std::vector<uint64_t> hashes;
  for (const std::string& t : tags) {
    hashes.push_back(hash_(t));
  }
  size_t n = 0;
  std::lock_guard lock(mu_);
  for (auto it = by_offset_.begin(); it != by_offset_.end();) {
    const std::vector<uint64_t>& carried = it->second.tags;
    const bool match =
        it->second.committed && std::any_of(carried.begin(), carried.end(), [&](uint64_t t) {
          return std::find(hashes.begin(), hashes.end(), t) != hashes.end();
        });
    if (!match) {
      ++it;
      continue;
    }
    ++n;
    if (soft) {
      it->second.stale = true;
      ++it;
    } else {
      it = DropLocked(it, /*dead=*/true);
    }
  }
  return n;
}

DiskStats DiskStore::Stats() const {
  std::lock_guard lock(mu_);
  DiskStats s = counts_;
  s.ready = ready();
  s.entries = by_hash_.size();
  s.bytes = bytes_;
  s.capacity = options_.size - kBlock;
  s.pinned = pins_.size();
  return s;
}

}  // namespace torii::cache
