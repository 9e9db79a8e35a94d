// tests/fuzz/fuzz_corpus_test.cc: the fuzz target's corpus as a GoogleTest (as Envoy keeps
// its fuzz corpora), so every CI run replays it under ASan/UBSan. Each seed runs as is and
// with deterministic mutations (byte flips, CR/LF/NUL/SP/colon/comma insertions, truncation);
// the oracle inside FuzzH1Request aborts on any smuggling or unclean output.
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

namespace torii::fuzz {
int FuzzH1Request(const uint8_t* data, size_t size);
}

namespace {

std::vector<std::string> LoadCorpus() {
  const std::filesystem::path dir = std::filesystem::path(TORII_FUZZ_CORPUS);
  std::vector<std::string> out;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    std::ifstream f(entry.path(), std::ios::binary);
    out.emplace_back(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  }
  return out;
}

int RunOne(const std::string& s) {
  return torii::fuzz::FuzzH1Request(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

// Every seed passes the oracle, and the valid ones produce at least one checked request.
TEST(H1RequestFuzzCorpus, SeedsPass) {
  const auto corpus = LoadCorpus();
  ASSERT_GE(corpus.size(), 10u);
  int checked = 0;
  for (const std::string& seed : corpus) {
    checked += RunOne(seed);
  }
  EXPECT_GE(checked, 8);
}

// Mutations of the seeds never break the oracle (no crash, no smuggled second request, no
// CR/LF/NUL in a forwarded header line, no differential mismatch).
TEST(H1RequestFuzzCorpus, MutationsPass) {
  const auto corpus = LoadCorpus();
  std::mt19937 rng(20261123);
  static constexpr char kSpecial[] = {'\r', '\n', '\0', ' ', ':', ',', '\t', '0', 'a', '_', ';'};
  int runs = 0;
  for (const std::string& seed : corpus) {
    for (int i = 0; i < 5000; ++i) {
      std::string s = seed;
      const int edits = 1 + static_cast<int>(rng() % 4);
      for (int e = 0; e < edits && !s.empty(); ++e) {
        const size_t pos = rng() % s.size();
        switch (rng() % 4) {
          case 0:
            s[pos] = static_cast<char>(s[pos] ^ (1 << (rng() % 8)));
            break;
          case 1:
            s.insert(pos, 1, kSpecial[rng() % sizeof(kSpecial)]);
            break;
          case 2:
            s.erase(pos, 1 + rng() % 3);
            break;
          default:
            s.resize(pos);
            break;
        }
      }
      RunOne(s);
      ++runs;
    }
  }
  EXPECT_GT(runs, 10000);
}

}  // namespace
