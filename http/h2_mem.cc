// http/h2_mem.cc: see h2_mem.h.
#include "http/h2_mem.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TORII_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define TORII_ASAN 1
#endif
#ifdef TORII_ASAN
#include <sanitizer/asan_interface.h>
#define TORII_POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define TORII_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define TORII_POISON(p, n) ((void)(p), (void)(n))
#define TORII_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

namespace torii::http {

namespace {

// Each block starts with this header (16 bytes keep the caller's memory 16-byte aligned, as
// malloc's is): its class, or kLarge with the size it was made with.
struct alignas(16) Header {
  uint32_t klass;
  uint32_t unused;
  uint64_t size;  // the caller's usable bytes
};
static_assert(sizeof(Header) == 16);

// Block sizes grow by about half (a block wastes at most a third of itself); 1,040 is a 1 KiB
// table (HPACK's ring of entries, one per session side) plus the header, which a 1,024-byte
// class would pad to 1,536. What a session keeps for its life is otherwise mostly larger, and
// goes to malloc, exactly sized.
constexpr std::array<uint32_t, 11> kBlockBytes = {64,  96,  128,  192,  256, 384,
                                                  512, 768, 1040, 1536, 2048};
constexpr uint32_t kClasses = kBlockBytes.size();
constexpr uint32_t kLarge = ~uint32_t{0};
constexpr size_t BlockBytes(uint32_t k) { return kBlockBytes[k]; }

// The class of each 16-byte step of a block's size: nghttp2 allocates for every header field
// it decodes, so a table look-up, not a search.
constexpr size_t kStep = 16;
constexpr size_t kSteps = kBlockBytes.back() / kStep + 1;
static_assert(std::ranges::all_of(kBlockBytes, [](uint32_t b) { return b % kStep == 0; }));
constexpr std::array<uint8_t, kSteps> kClassOfStep = [] {
  std::array<uint8_t, kSteps> t{};
  uint32_t k = 0;
  for (size_t i = 0; i < kSteps; ++i) {
    while (i * kStep > kBlockBytes[k]) {
      ++k;
    }
    t[i] = static_cast<uint8_t>(k);
  }
  return t;
}();

uint32_t ClassFor(size_t size) {
  if (size > kBlockBytes.back() - sizeof(Header)) {
    return kLarge;
  }
  return kClassOfStep[(size + sizeof(Header) + kStep - 1) / kStep];
}

// One thread's lists: a freed block's first bytes after its header link it to the next.
struct FreeLists {
  std::array<void*, kClasses> head{};
  size_t cached = 0;

  FreeLists() = default;
  FreeLists(const FreeLists&) = delete;
  FreeLists& operator=(const FreeLists&) = delete;
  ~FreeLists();
};

// Set once this thread's lists are gone (a session freed later, at the thread's or the
// program's exit, goes straight to malloc): trivially destructible, so valid to the end.
thread_local bool t_lists_gone = false;

FreeLists::~FreeLists() {
  t_lists_gone = true;
  for (uint32_t k = 0; k < kClasses; ++k) {
    while (head[k] != nullptr) {
      void* block = head[k];
      TORII_UNPOISON(block, BlockBytes(k));
      head[k] = *static_cast<void**>(static_cast<void*>(static_cast<Header*>(block) + 1));
      std::free(block);
    }
  }
  cached = 0;
}

thread_local FreeLists t_lists;

void* Allocate(size_t size) {
  const uint32_t k = ClassFor(size);
  Header* h = nullptr;
  if (k == kLarge) {
    if (size > SIZE_MAX - sizeof(Header)) {
      return nullptr;
    }
    h = static_cast<Header*>(std::malloc(sizeof(Header) + size));
  } else if (void* block = t_lists_gone ? nullptr : t_lists.head[k]) {
    TORII_UNPOISON(block, BlockBytes(k));
    h = static_cast<Header*>(block);
    t_lists.head[k] = *static_cast<void**>(static_cast<void*>(h + 1));
    t_lists.cached -= BlockBytes(k);
  } else {
    h = static_cast<Header*>(std::malloc(BlockBytes(k)));
  }
  if (h == nullptr) {
    return nullptr;
  }
  h->klass = k;
  h->size = k == kLarge ? size : BlockBytes(k) - sizeof(Header);
  return h + 1;
}

void Release(void* ptr) {
  if (ptr == nullptr) {
    return;
  }
  Header* h = static_cast<Header*>(ptr) - 1;
  const uint32_t k = h->klass;
  if (k == kLarge || t_lists_gone || t_lists.cached + BlockBytes(k) > kH2MemMaxCachedBytes) {
    std::free(h);
    return;
  }
  *static_cast<void**>(ptr) = t_lists.head[k];
  t_lists.head[k] = h;
  t_lists.cached += BlockBytes(k);
  TORII_POISON(h, BlockBytes(k));
}

void* MemMalloc(size_t size, void* /*user*/) { return Allocate(size); }

void MemFree(void* ptr, void* /*user*/) { Release(ptr); }

// calloc's contract over `allocate`: n × size bytes, zeroed; nullptr when that overflows or
// `allocate` fails.
template <typename AllocateFn>
void* ZeroedBlock(size_t n, size_t size, AllocateFn allocate) {
  if (size != 0 && n > SIZE_MAX / size) {
    return nullptr;
  }
  void* p = allocate(n * size);
  if (p != nullptr) {
    std::memset(p, 0, n * size);
  }
  return p;
}

void* MemCalloc(size_t n, size_t size, void* /*user*/) {
  return ZeroedBlock(n, size, [](size_t bytes) { return Allocate(bytes); });
}

void* MemRealloc(void* ptr, size_t size, void* /*user*/) {
  if (ptr == nullptr) {
    return Allocate(size);
  }
  const Header* h = static_cast<const Header*>(ptr) - 1;
  if (size <= h->size && h->klass != kLarge) {
    return ptr;  // the block already has room
  }
  void* next = Allocate(size);
  if (next == nullptr) {
    return nullptr;  // realloc's contract: the old block stays
  }
  std::memcpy(next, ptr, h->size < size ? h->size : size);
  Release(ptr);
  return next;
}

}  // namespace

nghttp2_mem* H2Memory() {
  static nghttp2_mem mem{nullptr, &MemMalloc, &MemFree, &MemCalloc, &MemRealloc};
  return &mem;
}

size_t H2MemoryCachedBytes() { return t_lists_gone ? 0 : t_lists.cached; }

}  // namespace torii::http
