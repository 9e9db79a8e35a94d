// conf/load.h: TOML → Config, with errors that name file:line:column.
//
// Exceptions are allowed here (config loading is off the data plane); toml++ parse errors and
// every validation failure come back as a ConfigError, never as a thrown exception.
#pragma once

#include <cstdint>
#include <expected>
#include <string>
#include <string_view>

#include "conf/config.h"

namespace torii::conf {

struct ConfigError {
  std::string file;
  uint32_t line = 0;    // 1-based; 0 when no position applies (e.g. file not readable)
  uint32_t column = 0;  // 1-based
  std::string message;  // what was wrong and what was expected

  // "file:line:column: message" (or "file: message" without a position).
  std::string ToString() const;
};

// Reads and validates the file at `path`.
std::expected<Config, ConfigError> LoadConfigFile(const std::string& path);

// Parses `text` as if it came from a file called `source_name` (used in error messages).
std::expected<Config, ConfigError> LoadConfigString(std::string_view text,
                                                    const std::string& source_name);

// "2s", "150ms", "1m", "1h", "500us" → milliseconds (us rounds up to 1 ms). nullopt if malformed.
std::optional<Duration> ParseDuration(std::string_view text);
// "16KiB", "16MiB", "1GiB", "512", "512B", "10KB" (1000-based) → bytes. nullopt if malformed.
std::optional<uint64_t> ParseSize(std::string_view text);

}  // namespace torii::conf
