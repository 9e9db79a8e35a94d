// tests/fuzz/config_fuzz.cc: the config loader on any text (a config file is operator input,
// but a mistyped or truncated one must give an error with file:line:col, never a crash).
//
// The oracle: LoadConfigString() returns a config or an error whose text names the source, and
// never throws or crashes; a config it accepts is accepted again from the same text (loading
// is deterministic).
#include <string>
#include <string_view>

#include "conf/load.h"
#include "tests/fuzz/fuzz.h"

namespace torii::fuzz {

int FuzzConfig(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto c = conf::LoadConfigString(text, "fuzz.toml");
  if (!c) {
    const std::string why = c.error().ToString();
    if (why.find("fuzz.toml") == std::string::npos) {
      Violation("config_fuzz", "error does not name the file", why);
    }
    return 0;
  }
  if (!conf::LoadConfigString(text, "fuzz.toml")) {
    Violation("config_fuzz", "accepted once, refused the second time", text);
  }
  return 1;
}

}  // namespace torii::fuzz

TORII_FUZZ_ENTRY(FuzzConfig)
