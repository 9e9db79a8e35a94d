// tests/fuzz/disk_meta_fuzz.cc: the disk tier's metadata decoder (cache::DiskStore::DecodeMeta)
// on arbitrary bytes, as a damaged or foreign cache file could hold them.
//
// The oracle: decoding never reads past its input (ASan) and never reserves from a count it
// cannot hold; what decodes encodes to bytes that decode again, and encode to themselves (the
// encoding of a decoded entry is canonical).
#include <string>

#include "cache/disk.h"
#include "tests/fuzz/fuzz.h"

namespace torii::fuzz {

int FuzzDiskMeta(const uint8_t* data, size_t size) {
  constexpr const char* kName = "disk_meta_fuzz";
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  cache::Entry entry;
  if (!cache::DiskStore::DecodeMeta(in, &entry)) {
    return 0;
  }
  std::string once;
  cache::DiskStore::EncodeMeta(entry, &once);
  cache::Entry again;
  if (!cache::DiskStore::DecodeMeta(once, &again)) {
    Violation(kName, "an encoded entry does not decode", once);
  }
  std::string twice;
  cache::DiskStore::EncodeMeta(again, &twice);
  if (twice != once) {
    Violation(kName, "encoding is not canonical", once);
  }
  if (again.status != entry.status || again.headers.size() != entry.headers.size() ||
      again.cc != entry.cc || again.etag != entry.etag) {
    Violation(kName, "a round trip changed the entry", once);
  }
  return 1;
}

}  // namespace torii::fuzz

TORII_FUZZ_ENTRY(FuzzDiskMeta)
