// tests/cache/disk_test.cc: the disk tier (cache/disk.h): records written and read back, a
// restart finding them (stale until revalidated), torn and forged records never served, the
// circular log's bound and its scan after wrapping, removal and purge by tag.
#include "cache/disk.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "cache/policy.h"

namespace torii::cache {
namespace {

uint64_t TestHash(std::string_view s) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a: enough for a test's keys
  for (char c : s) {
    h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  }
  return h;
}

class DiskTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/torii-disk-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/cache";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::shared_ptr<DiskStore> Open(uint64_t size = uint64_t{4} << 20) {
    std::string error;
    auto s = DiskStore::Open(DiskOptions{path_, size}, &TestHash, &error);
    EXPECT_TRUE(s) << error;
    if (s) {
      s->WaitReady();
    }
    return s;
  }

  static std::shared_ptr<Entry> MakeEntry(std::string body, int64_t lifetime = 3600) {
    auto e = std::make_shared<Entry>();
    e->status = 200;
    e->headers = {{"content-type", "text/plain"}, {"etag", "\"v1\""}};
    e->body = std::make_shared<const std::string>(std::move(body));
    e->request_time = e->response_time = e->date_value = 1000;
    e->freshness_lifetime = lifetime;
    e->etag = "\"v1\"";
    e->cc.max_age = static_cast<uint32_t>(lifetime);
    return e;
  }

  // What the worker does through its ring, done with plain system calls.
  static bool Write(DiskStore& s, std::string_view key, const Entry& e) {
    std::optional<DiskWrite> w = s.PrepareWrite(key, e);
    if (!w) {
      return false;
    }
    iovec iov[3] = {{w->head.data(), w->head.size()},
                    {const_cast<char*>(w->body->data()), w->body->size()},
                    {const_cast<char*>(DiskStore::ZeroPadding()), w->padding}};
    const ssize_t n = pwritev(s.fd(), iov, 3, static_cast<off_t>(w->offset));
    s.Written(*w, n == static_cast<ssize_t>(w->total()));
    return n == static_cast<ssize_t>(w->total());
  }
  static std::shared_ptr<Entry> Read(DiskStore& s, std::string_view key, int64_t now = 1010) {
    std::optional<DiskRecord> rec = s.Find(key);
    if (!rec) {
      return nullptr;
    }
    std::string head(rec->head_len, '\0');
    auto body = std::make_shared<std::string>(rec->body_len, '\0');
    if (pread(s.fd(), head.data(), head.size(), static_cast<off_t>(rec->offset)) !=
            static_cast<ssize_t>(head.size()) ||
        pread(s.fd(), body->data(), body->size(),
              static_cast<off_t>(rec->offset + rec->head_len)) !=
            static_cast<ssize_t>(body->size())) {
      return nullptr;
    }
    return s.Decode(key, *rec, head, std::move(body), now);
  }
  void Flip(uint64_t offset) {
    const int fd = ::open(path_.c_str(), O_RDWR);
    char c = 0;
    ASSERT_EQ(pread(fd, &c, 1, static_cast<off_t>(offset)), 1);
    c = static_cast<char>(c ^ 0x5a);
    ASSERT_EQ(pwrite(fd, &c, 1, static_cast<off_t>(offset)), 1);
    ::close(fd);
  }

  std::string dir_;
  std::string path_;
};

TEST_F(DiskTest, MetadataRoundTrips) {
  Entry e = *MakeEntry("x");
  e.status = 299;
  e.age_value = 7;
  e.heuristic = true;
  e.cc.s_maxage = 60;
  e.cc.stale_while_revalidate = 30;
  e.cc.stale_if_error = 0;
  e.cc.public_ = e.cc.immutable = e.cc.targeted = true;
  e.last_modified = "Tue, 01 Dec 2026 00:00:00 GMT";
  e.vary = {{"accept-encoding", "gzip", true}, {"x-user", "", false}};
  std::string bytes;
  DiskStore::EncodeMeta(e, &bytes);
  Entry back;
  ASSERT_TRUE(DiskStore::DecodeMeta(bytes, &back));
  EXPECT_EQ(back.status, 299);
  EXPECT_EQ(back.age_value, 7);
  EXPECT_TRUE(back.heuristic);
  EXPECT_EQ(back.cc, e.cc);
  EXPECT_EQ(back.etag, e.etag);
  EXPECT_EQ(back.last_modified, e.last_modified);
  ASSERT_EQ(back.vary.size(), 2u);
  EXPECT_EQ(back.vary[0].value, "gzip");
  EXPECT_FALSE(back.vary[1].has_value);
  ASSERT_EQ(back.headers.size(), 2u);
  EXPECT_EQ(back.headers[1].value, "\"v1\"");
  // Every truncation, and trailing junk, is refused without reading past the input.
  for (size_t n = 0; n < bytes.size(); ++n) {
    Entry partial;
    EXPECT_FALSE(DiskStore::DecodeMeta(std::string_view(bytes).substr(0, n), &partial)) << n;
  }
  Entry junk;
  EXPECT_FALSE(DiskStore::DecodeMeta(bytes + "x", &junk));
  // A count larger than the bytes left is refused before anything is reserved.
  Entry bare;
  std::string huge;
  DiskStore::EncodeMeta(bare, &huge);
  huge.resize(huge.size() - 4);  // the header count, last
  Entry h;
  EXPECT_FALSE(DiskStore::DecodeMeta(huge + std::string("\xff\xff\xff\x7f", 4), &h));
}

TEST_F(DiskTest, WrittenRecordsReadBack) {
  auto s = Open();
  EXPECT_FALSE(s->Find("k"));
  ASSERT_TRUE(Write(*s, "k", *MakeEntry(std::string(10000, 'a'))));
  auto e = Read(*s, "k");
  ASSERT_TRUE(e);
  EXPECT_EQ(*e->body, std::string(10000, 'a'));
  EXPECT_EQ(e->freshness_lifetime, 3600);  // written by this process: fresh as stored
  EXPECT_EQ(e->headers.size(), 2u);
  // Written again: the newer record answers, the older one's space is no longer counted.
  ASSERT_TRUE(Write(*s, "k", *MakeEntry("second")));
  EXPECT_EQ(*Read(*s, "k")->body, "second");
  const DiskStats st = s->Stats();
  EXPECT_EQ(st.entries, 1u);
  EXPECT_EQ(st.bytes, DiskStore::kBlock);
  EXPECT_EQ(st.writes, 2u);
  EXPECT_EQ(st.hits, 2u);
}

TEST_F(DiskTest, CompressedVariantsAndHugeObjectsAreNotWritten) {
  auto s = Open(uint64_t{1} << 20);
  auto e = MakeEntry("gz");
  e->coding = 1;
  EXPECT_FALSE(s->PrepareWrite("k", *e));
  EXPECT_FALSE(s->PrepareWrite("big", *MakeEntry(std::string(300 * 1024, 'b'))));
  EXPECT_TRUE(s->PrepareWrite("fits", *MakeEntry(std::string(200 * 1024, 'b'))));
}

TEST_F(DiskTest, RestartFindsRecordsStale) {
  {
    auto s = Open();
    for (int i = 0; i < 20; ++i) {
      ASSERT_TRUE(Write(*s, "k" + std::to_string(i), *MakeEntry(std::string(5000 + i, 'c'))));
    }
  }
  auto s = Open();
  EXPECT_EQ(s->Stats().loaded, 20u);
  for (int i = 0; i < 20; ++i) {
    auto e = Read(*s, "k" + std::to_string(i), /*now=*/1010);
    ASSERT_TRUE(e) << i;
    EXPECT_EQ(e->body->size(), 5000u + i);
    // Stale at once: revalidated on its first use after the restart.
    EXPECT_EQ(e->freshness_lifetime, 10);
    EXPECT_NE(Evaluate(*e, Request{}, 1010).verdict, Verdict::kFresh);
  }
  // Written by this process: fresh.
  ASSERT_TRUE(Write(*s, "k3", *MakeEntry("new")));
  EXPECT_EQ(Read(*s, "k3")->freshness_lifetime, 3600);
}

TEST_F(DiskTest, TornRecordsAreNeverServed) {
  uint64_t body_at = 0;
  uint64_t head_at = 0;
  {
    auto s = Open();
    ASSERT_TRUE(Write(*s, "torn-body", *MakeEntry(std::string(9000, 'd'))));
    ASSERT_TRUE(Write(*s, "torn-head", *MakeEntry(std::string(100, 'e'))));
    ASSERT_TRUE(Write(*s, "intact", *MakeEntry("ok")));
    body_at = s->Find("torn-body")->offset + s->Find("torn-body")->head_len + 4321;
    head_at = s->Find("torn-head")->offset + 12;
  }
  Flip(body_at);  // a byte of a body: the CRC catches it on read
  Flip(head_at);  // a byte of a header: the scan skips the record
  auto s = Open();
  EXPECT_EQ(s->Stats().loaded, 2u);
  EXPECT_FALSE(s->Find("torn-head"));
  EXPECT_FALSE(Read(*s, "torn-body"));
  EXPECT_EQ(s->Stats().corrupt, 1u);
  EXPECT_FALSE(s->Find("torn-body"));  // dropped from the index
  EXPECT_TRUE(Read(*s, "intact"));
}

TEST_F(DiskTest, ARecordInsideABodyIsNotTakenForOne) {
  // A record as another file (another key) would hold it, hidden in a body of this one at a
  // block boundary: the scan must not take it for a record after a restart.
  std::string forged;
  {
    std::filesystem::create_directory(dir_ + "/other");
    std::string error;
    auto other =
        DiskStore::Open(DiskOptions{dir_ + "/other/cache", uint64_t{4} << 20}, &TestHash, &error);
    ASSERT_TRUE(other);
    other->WaitReady();
    std::optional<DiskWrite> w = other->PrepareWrite("/evil", *MakeEntry("poison"));
    ASSERT_TRUE(w);
    forged = w->head + std::string(*w->body);
  }
  {
    auto s = Open();
    std::string body(3 * DiskStore::kBlock, 'z');
    const size_t head_len = s->PrepareWrite("/page", *MakeEntry(body))->head.size();
    // The previous line reserved a record; the next one starts a block later. Place the copy
    // so that it lands on a block boundary of the file.
    body.replace(DiskStore::kBlock - head_len, forged.size(), forged);
    ASSERT_TRUE(Write(*s, "/page", *MakeEntry(body)));
  }
  auto s = Open();
  EXPECT_FALSE(s->Find("/evil"));
  EXPECT_TRUE(Read(*s, "/page"));
}

TEST_F(DiskTest, TheLogIsBoundedAndItsScanSurvivesWrapping) {
  const uint64_t size = uint64_t{1} << 20;
  std::vector<std::string> keys;
  {
    auto s = Open(size);
    for (int i = 0; i < 300; ++i) {
      keys.push_back("k" + std::to_string(i));
      // Sizes that straddle blocks, so wrapping leaves records cut in the middle.
      ASSERT_TRUE(Write(*s, keys.back(), *MakeEntry(std::string(3000 + 1500 * (i % 7), 'f'))));
      ASSERT_LE(s->Stats().bytes, s->Stats().capacity);
    }
    EXPECT_TRUE(Read(*s, "k299"));
    EXPECT_FALSE(s->Find("k0"));  // written over: first in, first out
  }
  auto s = Open(size);
  const DiskStats st = s->Stats();
  EXPECT_GT(st.loaded, 50u);
  size_t found = 0;
  for (const std::string& k : keys) {
    if (s->Find(k)) {
      ASSERT_TRUE(Read(*s, k)) << k;  // everything indexed reads back intact
      ++found;
    }
  }
  EXPECT_EQ(found, st.loaded);
  EXPECT_TRUE(s->Find("k299"));
  EXPECT_EQ(s->Stats().corrupt, 0u);
  // The head continues after the newest record: the newest survive further writes.
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(Write(*s, "after" + std::to_string(i), *MakeEntry(std::string(4000, 'g'))));
  }
  EXPECT_TRUE(Read(*s, "k299"));
  EXPECT_TRUE(Read(*s, "after9"));
}

TEST_F(DiskTest, RemoveAndPurgeByTag) {
  auto s = Open();
  auto tagged = [](const std::string& tags) {
    auto e = MakeEntry("t");
    e->headers.push_back({"cache-tag", tags});
    return e;
  };
  ASSERT_TRUE(Write(*s, "a", *tagged("red, blue")));
  ASSERT_TRUE(Write(*s, "b", *tagged("blue")));
  ASSERT_TRUE(Write(*s, "c", *tagged("green")));
  ASSERT_TRUE(Write(*s, "d", *MakeEntry("plain")));
  EXPECT_TRUE(s->Remove("d"));
  EXPECT_FALSE(s->Remove("d"));
  EXPECT_FALSE(s->Find("d"));
  const std::vector<std::string> green{"green"};
  EXPECT_EQ(s->PurgeTags(green, /*soft=*/true), 1u);
  auto c = Read(*s, "c");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->freshness_lifetime, 10);  // soft: kept, stale
  const std::vector<std::string> blue{"blue", "nothing"};
  EXPECT_EQ(s->PurgeTags(blue, /*soft=*/false), 2u);
  EXPECT_FALSE(s->Find("a"));
  EXPECT_FALSE(s->Find("b"));
  // Tags survive a restart (read back from each record's head by the scan).
  s.reset();
  s = Open();
  EXPECT_EQ(s->PurgeTags(green, false), 1u);
  EXPECT_FALSE(s->Find("c"));
}

// What Remove() and a hard PurgeTags() drop stays dropped after a restart (tombstones); a
// tombstone that was never written lets the record come back, stale.
TEST_F(DiskTest, PurgesOutliveARestart) {
  auto write_tombstones = [](DiskStore& s) {
    while (std::optional<DiskWrite> w = s.TakeTombstone()) {
      const ssize_t n =
          pwrite(s.fd(), w->head.data(), w->head.size(), static_cast<off_t>(w->offset));
      s.Written(*w, n == static_cast<ssize_t>(w->head.size()));
    }
  };
  {
    auto s = Open();
    EXPECT_FALSE(s->TakeTombstone());
    for (const char* k : {"a", "b", "c", "d", "lost"}) {
      auto e = MakeEntry(k);
      e->headers.push_back({"surrogate-key", std::string("tag-") + k});
      ASSERT_TRUE(Write(*s, k, *e));
    }
    EXPECT_TRUE(s->Remove("a"));
    write_tombstones(*s);
    const std::vector<std::string> tags{"tag-b", "tag-c"};
    EXPECT_EQ(s->PurgeTags(tags, false), 2u);
    write_tombstones(*s);
    EXPECT_TRUE(s->Remove("lost"));  // its tombstone is never written (a crash first)
    ASSERT_TRUE(Write(*s, "e", *MakeEntry("after")));
  }
  auto s = Open();
  EXPECT_FALSE(s->Find("a"));
  EXPECT_FALSE(s->Find("b"));
  EXPECT_FALSE(s->Find("c"));
  EXPECT_TRUE(Read(*s, "d"));
  EXPECT_TRUE(Read(*s, "e"));
  auto lost = Read(*s, "lost");
  ASSERT_TRUE(lost);
  EXPECT_NE(Evaluate(*lost, Request{}, 1010).verdict, Verdict::kFresh);
  EXPECT_EQ(s->Stats().corrupt, 0u);
}

TEST_F(DiskTest, ReadsOfRecordsWrittenOverOrDroppedAreMisses) {
  auto s = Open();
  ASSERT_TRUE(Write(*s, "k", *MakeEntry("one")));
  const DiskRecord rec = *s->Find("k");
  std::string head(rec.head_len, '\0');
  ASSERT_EQ(pread(s->fd(), head.data(), head.size(), static_cast<off_t>(rec.offset)),
            static_cast<ssize_t>(head.size()));
  auto body = std::make_shared<std::string>("one");
  EXPECT_TRUE(s->Remove("k"));
  EXPECT_FALSE(s->Decode("k", rec, head, body, 1010));  // purged while read: not served
  EXPECT_EQ(s->Stats().corrupt, 0u);
}

// A hit served in place: the entry's body is a view of the file's mapping (no read), the same
// bytes as written, and it pins its record until the last copy of the body is gone.
TEST_F(DiskTest, RecordsAreServedInPlaceAndPinnedWhileTheirBodyLives) {
  auto s = Open();
  const std::string body(10000, 'm');
  ASSERT_TRUE(Write(*s, "k", *MakeEntry(body)));
  const DiskRecord rec = *s->Find("k");
  MappedRecord m = s->MapRecord("k", rec, 1010);
  ASSERT_FALSE(m.read);  // just written: its pages are in memory
  ASSERT_TRUE(m.entry);
  EXPECT_TRUE(m.entry->body.borrowed());
  EXPECT_EQ(*m.entry->body, body);
  EXPECT_EQ(m.entry->status, 200);
  EXPECT_EQ(m.entry->etag, "\"v1\"");
  EXPECT_EQ(s->Stats().mapped, 1u);
  EXPECT_EQ(s->Stats().hits, 1u);
  EXPECT_EQ(s->Stats().pinned, 1u);
  Body kept = m.entry->body;  // a send still queued from it
  m.entry.reset();
  EXPECT_EQ(s->Stats().pinned, 1u);
  EXPECT_EQ(*kept, body);
  kept.reset();
  EXPECT_EQ(s->Stats().pinned, 0u);
  // A record dropped between Find() and MapRecord() is a miss, and pins nothing.
  ASSERT_TRUE(Write(*s, "gone", *MakeEntry("bye")));
  const DiskRecord gone = *s->Find("gone");
  ASSERT_TRUE(s->Remove("gone"));
  m = s->MapRecord("gone", gone, 1010);
  EXPECT_FALSE(m.read);
  EXPECT_FALSE(m.entry);
  EXPECT_EQ(s->Stats().pinned, 0u);
  EXPECT_EQ(s->Stats().corrupt, 0u);
  // Another key's record is refused (and dropped) as Decode() refuses it.
  ASSERT_TRUE(Write(*s, "a", *MakeEntry("aaa")));
  m = s->MapRecord("b", *s->Find("a"), 1010);
  EXPECT_FALSE(m.entry);
  EXPECT_EQ(s->Stats().corrupt, 1u);
  EXPECT_EQ(s->Stats().pinned, 0u);
}

// The write head goes around a pinned record: it stays intact and indexed however much is
// written, and is written over on a later lap once its body is gone. When pinned records
// leave no room, a write is declined.
TEST_F(DiskTest, TheWriteHeadPassesOverPinnedRecords) {
  const uint64_t size = uint64_t{1} << 20;
  auto s = Open(size);
  const std::string body(100000, 'p');
  ASSERT_TRUE(Write(*s, "pinned", *MakeEntry(body)));
  MappedRecord m = s->MapRecord("pinned", *s->Find("pinned"), 1010);
  ASSERT_TRUE(m.entry);
  for (int i = 0; i < 60; ++i) {  // about five times around the file
    ASSERT_TRUE(Write(*s, "w" + std::to_string(i), *MakeEntry(std::string(80000, 'w'))));
  }
  EXPECT_EQ(*m.entry->body, body);  // the same bytes, never written over
  ASSERT_TRUE(s->Find("pinned"));
  EXPECT_TRUE(Read(*s, "pinned"));
  EXPECT_EQ(s->Stats().corrupt, 0u);
  m.entry.reset();
  EXPECT_EQ(s->Stats().pinned, 0u);
  for (int i = 0; i < 20 && s->Find("pinned"); ++i) {
    ASSERT_TRUE(Write(*s, "x" + std::to_string(i), *MakeEntry(std::string(80000, 'x'))));
  }
  EXPECT_FALSE(s->Find("pinned"));  // unpinned: first in, first out again
  // Every record pinned: no room for another.
  std::vector<std::shared_ptr<Entry>> held;
  for (int i = 0; i < 60; ++i) {
    for (const std::string key : {"w" + std::to_string(i), "x" + std::to_string(i)}) {
      if (std::optional<DiskRecord> rec = s->Find(key)) {
        if (MappedRecord r = s->MapRecord(key, *rec, 1010); r.entry) {
          held.push_back(r.entry);
        }
      }
    }
  }
  ASSERT_EQ(held.size(), s->Stats().entries);
  ASSERT_EQ(s->Stats().pinned, held.size());
  EXPECT_FALSE(s->PrepareWrite("one-more", *MakeEntry(std::string(200000, 'z'))));
  held.clear();
  EXPECT_TRUE(Write(*s, "one-more", *MakeEntry(std::string(200000, 'z'))));
}

// A record whose pages are not in memory is read, not served from the mapping (a send that
// touched them would wait for the disk in the worker).
TEST_F(DiskTest, ARecordNotInMemoryIsReadInstead) {
  auto s = Open();
  ASSERT_TRUE(Write(*s, "cold", *MakeEntry(std::string(50000, 'c'))));
  const DiskRecord rec = *s->Find("cold");
  ASSERT_EQ(fdatasync(s->fd()), 0);
  ASSERT_EQ(posix_fadvise(s->fd(), 0, 0, POSIX_FADV_DONTNEED), 0);
  const MappedRecord m = s->MapRecord("cold", rec, 1010);
  if (!m.read) {
    GTEST_SKIP() << "this file system keeps the pages in memory (tmpfs?)";
  }
  EXPECT_FALSE(m.entry);
  EXPECT_EQ(s->Stats().pinned, 0u);
  EXPECT_TRUE(Read(*s, "cold"));  // the ring's read, as the worker does it
}

// A file cut short under a running torii (not something torii does, but it is a file anyone
// with the rights can truncate): the pages past its end are in no cache, so the record is
// read, and the read finds it short: a miss, never a touch of the mapping past the end.
TEST_F(DiskTest, AFileTruncatedUnderTheStoreIsAMissNotACrash) {
  auto s = Open();
  ASSERT_TRUE(Write(*s, "k", *MakeEntry(std::string(30000, 't'))));
  const DiskRecord rec = *s->Find("k");
  ASSERT_EQ(ftruncate(s->fd(), static_cast<off_t>(DiskStore::kBlock)), 0);
  const MappedRecord m = s->MapRecord("k", rec, 1010);
  EXPECT_TRUE(m.read);
  EXPECT_FALSE(m.entry);
  EXPECT_EQ(s->Stats().pinned, 0u);
  EXPECT_FALSE(Read(*s, "k"));
}

TEST_F(DiskTest, FailedWritesAreNotIndexed) {
  auto s = Open();
  std::optional<DiskWrite> w = s->PrepareWrite("k", *MakeEntry("x"));
  ASSERT_TRUE(w);
  s->Written(*w, false);
  EXPECT_FALSE(s->Find("k"));
  EXPECT_EQ(s->Stats().write_errors, 1u);
  EXPECT_EQ(s->Stats().bytes, 0u);
}

TEST_F(DiskTest, TheFileIsLockedAndReformattedForAnotherSize) {
  auto s = Open();
  ASSERT_TRUE(Write(*s, "k", *MakeEntry("x")));
  std::string error;
  EXPECT_FALSE(DiskStore::Open(DiskOptions{path_, uint64_t{4} << 20}, &TestHash, &error));
  EXPECT_NE(error.find("in use"), std::string::npos) << error;
  s.reset();
  s = Open(uint64_t{8} << 20);
  EXPECT_FALSE(s->Find("k"));
  EXPECT_EQ(std::filesystem::file_size(path_), uint64_t{8} << 20);
  EXPECT_FALSE(DiskStore::Open(DiskOptions{dir_, uint64_t{4} << 20}, &TestHash, &error));
  EXPECT_FALSE(DiskStore::Open(DiskOptions{path_, 4096}, &TestHash, &error));
  EXPECT_NE(error.find("1MiB"), std::string::npos) << error;
}

}  // namespace
}  // namespace torii::cache
