// tests/fuzz/fuzz_corpus_test.cc: every fuzz target's corpus as a GoogleTest (as Envoy keeps its
// fuzz corpora), so every CI run replays them under ASan/UBSan. Each seed in
// tests/fuzz/corpus/<target>/ runs as is and with deterministic mutations (byte flips, inserted
// CR/LF/NUL/SP/colon/comma/percent/dot/slash, deletions, truncation); the oracle inside each
// target aborts on a violation. scripts/fuzz.sh runs the same targets under libFuzzer.
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <ostream>
#include <random>
#include <string>
#include <vector>

namespace torii::fuzz {
int FuzzH1Request(const uint8_t* data, size_t size);
int FuzzH1Response(const uint8_t* data, size_t size);
int FuzzPath(const uint8_t* data, size_t size);
int FuzzCache(const uint8_t* data, size_t size);
int FuzzNegotiate(const uint8_t* data, size_t size);
int FuzzClientIp(const uint8_t* data, size_t size);
int FuzzAccessLog(const uint8_t* data, size_t size);
int FuzzDecoder(const uint8_t* data, size_t size);
int FuzzConfig(const uint8_t* data, size_t size);
int FuzzProxyProtocol(const uint8_t* data, size_t size);
int FuzzHpack(const uint8_t* data, size_t size);
int FuzzH2Fields(const uint8_t* data, size_t size);
int FuzzGrpc(const uint8_t* data, size_t size);
int FuzzDnsMessage(const uint8_t* data, size_t size);
int FuzzDiskMeta(const uint8_t* data, size_t size);
int FuzzH2Client(const uint8_t* data, size_t size);
int FuzzH2Server(const uint8_t* data, size_t size);
}  // namespace torii::fuzz

namespace {

struct Target {
  const char* name;  // the corpus folder and the scripts/fuzz.sh name
  int (*fn)(const uint8_t*, size_t);
  int mutations;     // per seed
  int min_checked;   // how many seeds (as is) the oracle must have checked something of
};

// gtest prints a parameter in the test's description: the target's name says it all.
void PrintTo(const Target& t, std::ostream* os) { *os << t.name; }

const Target kTargets[] = {
    {"h1_request", torii::fuzz::FuzzH1Request, 5000, 8},
    {"h1_response", torii::fuzz::FuzzH1Response, 3000, 6},
    {"path", torii::fuzz::FuzzPath, 5000, 6},
    {"cache", torii::fuzz::FuzzCache, 2000, 3},
    {"negotiate", torii::fuzz::FuzzNegotiate, 2000, 3},
    {"client_ip", torii::fuzz::FuzzClientIp, 2000, 3},
    {"access_log", torii::fuzz::FuzzAccessLog, 1000, 2},
    {"decoder", torii::fuzz::FuzzDecoder, 200, 3},
    {"config", torii::fuzz::FuzzConfig, 300, 1},
    {"proxy_protocol", torii::fuzz::FuzzProxyProtocol, 5000, 5},
    {"h2_fields", torii::fuzz::FuzzH2Fields, 3000, 4},
    {"grpc", torii::fuzz::FuzzGrpc, 3000, 6},
    {"dns_message", torii::fuzz::FuzzDnsMessage, 3000, 5},
    {"disk_meta", torii::fuzz::FuzzDiskMeta, 3000, 3},
    {"h2_client", torii::fuzz::FuzzH2Client, 3000, 4},
    {"h2_server", torii::fuzz::FuzzH2Server, 3000, 4},
    {"hpack", torii::fuzz::FuzzHpack, 3000, 8},
};

std::vector<std::string> LoadCorpus(const std::string& target) {
  const std::filesystem::path dir = std::filesystem::path(TORII_FUZZ_CORPUS) / target;
  std::vector<std::string> out;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    std::ifstream f(entry.path(), std::ios::binary);
    out.emplace_back(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  }
  return out;
}

int RunOne(const Target& t, const std::string& s) {
  return t.fn(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

class FuzzCorpus : public ::testing::TestWithParam<Target> {};

// Every seed passes its target's oracle, and enough of them are valid inputs that the oracle
// had something to check (a corpus of rejects would test only the error paths).
TEST_P(FuzzCorpus, SeedsPass) {
  const Target& t = GetParam();
  const auto corpus = LoadCorpus(t.name);
  ASSERT_GE(corpus.size(), 3u) << t.name;
  int checked = 0;
  for (const std::string& seed : corpus) {
    checked += RunOne(t, seed) > 0 ? 1 : 0;
  }
  EXPECT_GE(checked, t.min_checked) << t.name;
}

// Deterministic mutations of the seeds never break the oracle.
TEST_P(FuzzCorpus, MutationsPass) {
  const Target& t = GetParam();
  const auto corpus = LoadCorpus(t.name);
  std::mt19937 rng(20261123);
  static constexpr char kSpecial[] = {'\r', '\n', '\0', ' ', ':', ',', '\t', '0', 'a',
                                      '_',  ';',  '%',  '.', '/', '?', '=', '\\', '\xff'};
  int runs = 0;
  for (const std::string& seed : corpus) {
    for (int i = 0; i < t.mutations; ++i) {
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
      RunOne(t, s);
      ++runs;
    }
  }
  EXPECT_GE(runs, t.mutations * 3) << t.name;
}

INSTANTIATE_TEST_SUITE_P(Targets, FuzzCorpus, ::testing::ValuesIn(kTargets),
                         [](const ::testing::TestParamInfo<Target>& info) {
                           return std::string(info.param.name);
                         });

}  // namespace
