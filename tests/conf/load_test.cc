// tests/conf/load_test.cc: the TOML loader (conf/load.cc) end to end: good configs become the
// right Config (defaults included), and every class of mistake is refused with the exact
// line:column of the offending key or value and a message saying what was expected.
#include "conf/load.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace torii::conf {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// A minimal valid config; tests prepend tables to it or write their own document.
constexpr std::string_view kBase = R"(
[[listener]]
name = "http"
address = "127.0.0.1:8080"

[[pool]]
name = "app"
backends = [{ address = "127.0.0.1:9001" }]

[[route]]
pool = "app"
)";

// `snippet` first (so its line numbers start at 1), then kBase.
std::string WithBase(std::string_view snippet) { return std::string(snippet) + std::string(kBase); }

Config LoadOk(std::string_view text) {
  auto config = LoadConfigString(text, "test.toml");
  EXPECT_TRUE(config.has_value()) << (config ? "" : config.error().ToString());
  return config ? *config : Config{};
}

// Asserts that `text` is refused at line:column with a message containing `substring`.
void ExpectError(std::string_view text, uint32_t line, uint32_t column,
                 std::string_view substring) {
  auto config = LoadConfigString(text, "test.toml");
  ASSERT_FALSE(config.has_value()) << "config was accepted, expected: " << substring;
  const ConfigError& error = config.error();
  EXPECT_EQ(error.file, "test.toml");
  EXPECT_EQ(error.line, line) << error.ToString();
  EXPECT_EQ(error.column, column) << error.ToString();
  EXPECT_NE(error.message.find(substring), std::string::npos)
      << "message: " << error.message << "\nexpected to contain: " << substring;
}

// ---------------------------------------------------------------------------------------------
// Good configs.

// Every key set to a non-default value lands in the right field with the right conversion.
TEST(LoadConfig, FullConfigRoundTrips) {
  const Config c = LoadOk(R"(
[server]
workers = 4
ready_file = "/tmp/torii.ready"
access_log = "/var/log/torii/access.log"
access_log_format = "json"
error_log = "/var/log/torii/error.log"
log_level = "debug"
shutdown_grace = "0s"
max_connections = 1000
sq_entries = 1024
cq_entries = 8192
recv_buffers = 512
recv_buffer_size = "32KiB"
merge_slashes = false
request_id_header = "X-Trace-Id"
trace_context = false

[limits]
header_bytes = "8KiB"
header_count = 50
body_bytes = 1048576
header_timeout = "5s"
idle_timeout = "2m"
body_timeout = "1500ms"
send_timeout = "1h"
tunnel_idle_timeout = "90s"
keepalive_requests = 7
max_concurrent_streams = 32

[[listener]]
name = "http"
address = "0.0.0.0:8080"
backlog = 128

[[listener]]
name = "v6"
address = "[::1]:0"
allow_encoded_slash = true
allow_encoded_nul = true

[[pool]]
name = "app"
algorithm = "round_robin"
backends = [
  { address = "10.0.0.11:9000", weight = 3 },
  { address = "[fd00::12]:9000" },
  { address = "10.0.0.13:9000", backup = true },
]
connect_timeout = "1s"
response_timeout = "30s"
keepalive_timeout = "15s"
keepalive = 0
retries = 0

[[pool]]
name = "static-files_2"
backends = [{ address = "10.0.1.1:80" }]

[[route]]
host = "WWW.Example.COM"
path_prefix = "/static/"
pool = "static-files_2"
add_headers = { "X-Zeta" = "last?", "Strict-Transport-Security" = "max-age=60", "X-A" = "a\ttab" }

[[route]]
host = "*.example.com"
pool = "app"

[[route]]
pool = "app"
)");
  EXPECT_EQ(c.source, "test.toml");
  EXPECT_EQ(c.server.workers, 4u);
  EXPECT_EQ(c.server.ready_file, "/tmp/torii.ready");
  EXPECT_EQ(c.server.access_log, "/var/log/torii/access.log");
  EXPECT_EQ(c.server.access_log_format, LogFormat::kJson);
  EXPECT_EQ(c.server.error_log, "/var/log/torii/error.log");
  EXPECT_EQ(c.server.log_level, "debug");
  EXPECT_EQ(c.server.shutdown_grace, milliseconds(0));
  EXPECT_EQ(c.server.max_connections, 1000u);
  EXPECT_FALSE(c.server.merge_slashes);
  EXPECT_EQ(c.server.request_id_header, "X-Trace-Id");
  EXPECT_FALSE(c.server.trace_context);
  EXPECT_FALSE(c.listeners[0].allow_encoded_slash);
  EXPECT_FALSE(c.listeners[0].allow_encoded_nul);
  EXPECT_TRUE(c.listeners[1].allow_encoded_slash);
  EXPECT_TRUE(c.listeners[1].allow_encoded_nul);
  EXPECT_EQ(c.server.sq_entries, 1024u);
  EXPECT_EQ(c.server.cq_entries, 8192u);
  EXPECT_EQ(c.server.recv_buffers, 512u);
  EXPECT_EQ(c.server.recv_buffer_size, 32u * 1024);


  EXPECT_EQ(c.limits.header_bytes, 8u * 1024);
  EXPECT_EQ(c.limits.header_count, 50u);
  EXPECT_EQ(c.limits.body_bytes, 1048576u);
  EXPECT_EQ(c.limits.header_timeout, seconds(5));
  EXPECT_EQ(c.limits.idle_timeout, seconds(120));
  EXPECT_EQ(c.limits.body_timeout, milliseconds(1500));
  EXPECT_EQ(c.limits.send_timeout, seconds(3600));
  EXPECT_EQ(c.limits.tunnel_idle_timeout, seconds(90));
  EXPECT_EQ(c.limits.keepalive_requests, 7u);
  EXPECT_EQ(c.limits.max_concurrent_streams, 32u);

  ASSERT_EQ(c.listeners.size(), 2u);
  EXPECT_EQ(c.listeners[0].name, "http");
  EXPECT_EQ(c.listeners[0].address.text, "0.0.0.0:8080");
  EXPECT_EQ(c.listeners[0].address.family(), AF_INET);
  EXPECT_EQ(c.listeners[0].address.port(), 8080);
  EXPECT_EQ(c.listeners[0].backlog, 128u);
  EXPECT_EQ(c.listeners[1].name, "v6");
  EXPECT_EQ(c.listeners[1].address.family(), AF_INET6);
  EXPECT_EQ(c.listeners[1].address.port(), 0);
  EXPECT_EQ(c.listeners[1].backlog, 4096u);

  ASSERT_EQ(c.pools.size(), 2u);
  const PoolConfig& app = c.pools[0];
  EXPECT_EQ(app.name, "app");
  EXPECT_EQ(app.algorithm, Algorithm::kRoundRobin);
  ASSERT_EQ(app.backends.size(), 3u);
  EXPECT_EQ(app.backends[0].address.ToString(), "10.0.0.11:9000");
  EXPECT_EQ(app.backends[0].weight, 3u);
  EXPECT_FALSE(app.backends[0].backup);
  EXPECT_EQ(app.backends[1].address.ToString(), "[fd00::12]:9000");
  EXPECT_EQ(app.backends[1].weight, 1u);
  EXPECT_TRUE(app.backends[2].backup);
  EXPECT_EQ(app.connect_timeout, seconds(1));
  EXPECT_EQ(app.response_timeout, seconds(30));
  EXPECT_EQ(app.keepalive_timeout, seconds(15));
  EXPECT_EQ(app.keepalive, 0u);
  EXPECT_EQ(app.retries, 0u);
  EXPECT_EQ(c.pools[1].name, "static-files_2");
  EXPECT_FALSE(c.pools[1].health.has_value());

  ASSERT_EQ(c.routes.size(), 3u);
  EXPECT_EQ(c.routes[0].host, "www.example.com");
  EXPECT_EQ(c.routes[0].path_prefix, "/static/");
  EXPECT_EQ(c.routes[0].pool, "static-files_2");
  EXPECT_EQ(c.routes[0].pool_index, 1u);
  // File order, not alphabetical.
  using Header = std::pair<std::string, std::string>;
  EXPECT_EQ(
      c.routes[0].add_headers,
      (std::vector<Header>{
          {"X-Zeta", "last?"}, {"Strict-Transport-Security", "max-age=60"}, {"X-A", "a\ttab"}}));
  EXPECT_EQ(c.routes[1].host, "*.example.com");
  EXPECT_EQ(c.routes[1].pool_index, 0u);
  EXPECT_EQ(c.routes[2].host, "*");
  EXPECT_EQ(c.routes[2].path_prefix, "/");
  EXPECT_FALSE(c.routes[2].compress);
}

// A config that sets nothing optional gets config.h's defaults everywhere (compared with a
// default-constructed Config, so retuning a default in config.h does not break this test).
TEST(LoadConfig, DefaultsApply) {
  const Config c = LoadOk(kBase);
  const Config d;
  EXPECT_EQ(c.server.workers, d.server.workers);
  EXPECT_EQ(c.server.ready_file, "");
  EXPECT_EQ(c.server.access_log, d.server.access_log);
  EXPECT_EQ(c.server.access_log_format, d.server.access_log_format);
  EXPECT_EQ(c.server.error_log, d.server.error_log);
  EXPECT_EQ(c.server.log_level, d.server.log_level);
  EXPECT_EQ(c.server.shutdown_grace, d.server.shutdown_grace);
  EXPECT_EQ(c.server.max_connections, d.server.max_connections);
  EXPECT_EQ(c.server.sq_entries, d.server.sq_entries);
  EXPECT_EQ(c.server.cq_entries, d.server.cq_entries);
  EXPECT_EQ(c.server.recv_buffers, d.server.recv_buffers);
  EXPECT_EQ(c.server.recv_buffer_size, d.server.recv_buffer_size);
  EXPECT_EQ(c.server.request_id_header, "X-Request-Id");
  EXPECT_TRUE(c.server.trace_context);
  EXPECT_EQ(c.server.user, "");
  EXPECT_EQ(LoadOk(WithBase("[server]\nuser = \"torii\"\ngroup = \"www-data\"\n")).server.group,
            "www-data");
  EXPECT_TRUE(c.server.merge_slashes);
  EXPECT_FALSE(c.admin.enabled);
  EXPECT_TRUE(c.admin.allow.empty());
  EXPECT_EQ(c.limits.header_bytes, d.limits.header_bytes);
  EXPECT_EQ(c.limits.header_count, d.limits.header_count);
  EXPECT_EQ(c.limits.body_bytes, d.limits.body_bytes);
  EXPECT_EQ(c.limits.header_timeout, d.limits.header_timeout);
  EXPECT_EQ(c.limits.idle_timeout, d.limits.idle_timeout);
  EXPECT_EQ(c.limits.body_timeout, d.limits.body_timeout);
  EXPECT_EQ(c.limits.send_timeout, d.limits.send_timeout);
  EXPECT_EQ(c.limits.keepalive_requests, d.limits.keepalive_requests);
  ASSERT_EQ(c.listeners.size(), 1u);
  EXPECT_EQ(c.listeners[0].backlog, ListenerConfig{}.backlog);
  ASSERT_EQ(c.pools.size(), 1u);
  const PoolConfig p;
  EXPECT_EQ(c.pools[0].algorithm, Algorithm::kRoundRobin);
  EXPECT_EQ(c.pools[0].backends[0].weight, 1u);
  EXPECT_FALSE(c.pools[0].backends[0].backup);
  EXPECT_FALSE(c.pools[0].health.has_value());
  EXPECT_EQ(c.pools[0].connect_timeout, p.connect_timeout);
  EXPECT_EQ(c.pools[0].response_timeout, p.response_timeout);
  EXPECT_EQ(c.pools[0].keepalive_timeout, p.keepalive_timeout);
  EXPECT_EQ(c.pools[0].keepalive, p.keepalive);
  EXPECT_EQ(c.pools[0].retries, p.retries);
  ASSERT_EQ(c.routes.size(), 1u);
  EXPECT_EQ(c.routes[0].host, "*");
  EXPECT_EQ(c.routes[0].path_prefix, "/");
  EXPECT_EQ(c.routes[0].pool_index, 0u);
  EXPECT_FALSE(c.routes[0].compress);
  EXPECT_FALSE(c.routes[0].server_timing);
  EXPECT_TRUE(c.routes[0].add_headers.empty());
}

// Features whose keys are decided but whose code has not landed are refused, at the key,
// after the rest of the file was validated: never silently accepted and ignored.
TEST(LoadConfig, AdminListener) {
  Config c = LoadOk(WithBase("[admin]\naddress = \"127.0.0.1:9901\"\nallow = [\"10.0.0.0/8\"]\n"));
  EXPECT_TRUE(c.admin.enabled);
  EXPECT_EQ(c.admin.address.ToString(), "127.0.0.1:9901");
  EXPECT_EQ(c.admin.allow, (std::vector<std::string>{"10.0.0.0/8"}));
}

TEST(LoadConfig, ServerTimingPerRoute) {
  Config c = LoadOk(R"([[listener]]
name = "http"
address = "127.0.0.1:8080"
[[pool]]
name = "app"
backends = [{ address = "127.0.0.1:9001" }]
[[route]]
pool = "app"
server_timing = true
)");
  EXPECT_TRUE(c.routes[0].server_timing);
}

// A malformed health value is reported precisely.
TEST(LoadConfig, BadHealthIntervalIsPinpointed) {
  ExpectError(R"([[listener]]
name = "http"
address = "127.0.0.1:8080"
[[pool]]
name = "app"
backends = [{ address = "127.0.0.1:9001" }]
health = { path = "/up", interval = "soon" }
[[route]]
pool = "app"
)",
              7, 37, "interval");
}

// The shipped demo config (conf/demo.toml) loads and says what its comments say.
TEST(LoadConfig, DemoConfigLoads) {
  std::filesystem::path demo;
  if (const char* dir = std::getenv("TORII_SOURCE_DIR")) {
    demo = std::filesystem::path(dir) / "conf" / "demo.toml";
  } else {
    // This file is <source>/tests/conf/load_test.cc.
    demo = std::filesystem::path(__FILE__).parent_path().parent_path().parent_path() / "conf" /
           "demo.toml";
  }
  auto config = LoadConfigFile(demo.string());
  ASSERT_TRUE(config.has_value()) << config.error().ToString()
                                  << " (set TORII_SOURCE_DIR to the source tree if the test "
                                  << "binary was built from relative paths and runs elsewhere)";
  EXPECT_EQ(config->source, demo.string());
  EXPECT_EQ(config->server.workers, 0u);
  EXPECT_EQ(config->server.access_log, "-");
  EXPECT_EQ(config->server.ready_file, "");
  ASSERT_EQ(config->listeners.size(), 1u);
  EXPECT_EQ(config->listeners[0].name, "http");
  EXPECT_EQ(config->listeners[0].address.ToString(), "127.0.0.1:8080");
  ASSERT_EQ(config->pools.size(), 1u);
  EXPECT_EQ(config->pools[0].name, "app");
  ASSERT_EQ(config->pools[0].backends.size(), 3u);
  EXPECT_EQ(config->pools[0].backends[0].address.ToString(), "127.0.0.1:9001");
  EXPECT_EQ(config->pools[0].backends[1].address.ToString(), "127.0.0.1:9002");
  EXPECT_EQ(config->pools[0].backends[2].address.ToString(), "127.0.0.1:9003");
  ASSERT_TRUE(config->pools[0].health.has_value());
  EXPECT_EQ(config->pools[0].health->path, "/health");
  EXPECT_EQ(config->pools[0].max_fails, 3u);
  ASSERT_EQ(config->routes.size(), 2u);
  EXPECT_EQ(config->routes[0].path_prefix, "/static/");
  EXPECT_EQ(config->routes[0].cache, "main");
  ASSERT_EQ(config->caches.size(), 1u);
  EXPECT_EQ(config->caches[0].memory, 64ull << 20);
  EXPECT_EQ(config->routes[1].host, "*");
  EXPECT_EQ(config->routes[1].path_prefix, "/");
  EXPECT_EQ(config->routes[1].pool, "app");
  EXPECT_TRUE(config->routes[1].cache.empty());
}

// LoadConfigFile reads a real file and reports its path as the source.
TEST(LoadConfig, LoadsFromFile) {
  char path[] = "/tmp/torii_conf_test_XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  ::close(fd);
  {
    std::ofstream out(path);
    out << kBase;
  }
  auto config = LoadConfigFile(path);
  std::remove(path);
  ASSERT_TRUE(config.has_value()) << config.error().ToString();
  EXPECT_EQ(config->source, path);
  EXPECT_EQ(config->listeners.size(), 1u);
}

// ---------------------------------------------------------------------------------------------
// Errors: one test per class, each pinning line:column and the message.

// A file that cannot be opened: "cannot read file" with no position.
TEST(LoadConfigErrors, MissingFile) {
  auto config = LoadConfigFile("/nonexistent/torii.toml");
  ASSERT_FALSE(config.has_value());
  EXPECT_EQ(config.error().file, "/nonexistent/torii.toml");
  EXPECT_EQ(config.error().line, 0u);
  EXPECT_EQ(config.error().message, "cannot read file: No such file or directory");
  EXPECT_EQ(config.error().ToString(),
            "/nonexistent/torii.toml: cannot read file: No such file or directory");
}

// A directory opens but does not read.
TEST(LoadConfigErrors, DirectoryIsNotAFile) {
  auto config = LoadConfigFile("/tmp");
  ASSERT_FALSE(config.has_value());
  EXPECT_EQ(config.error().line, 0u);
  EXPECT_NE(config.error().message.find("cannot read file: Is a directory"), std::string::npos);
}

// toml++ syntax errors keep toml++'s position and description.
TEST(LoadConfigErrors, TomlSyntaxError) {
  ExpectError("[server]\nworkers = = 2\n", 2, 11, "TOML syntax error");
  ExpectError("[server\n", 1, 8, "TOML syntax error");
}

// ConfigError prints as file:line:column: message.
TEST(LoadConfigErrors, ToStringHasPosition) {
  auto config =
      LoadConfigString(WithBase("[limits]\nheader_bytes = \"16 potatoes\"\n"), "demo.toml");
  ASSERT_FALSE(config.has_value());
  EXPECT_EQ(config.error().ToString(),
            "demo.toml:2:16: [limits] header_bytes: expected a size such as \"16KiB\", got "
            "\"16 potatoes\"");
}

// Unknown keys are refused at the key, with a suggestion when one is close.
TEST(LoadConfigErrors, UnknownKey) {
  ExpectError(WithBase("[server]\nworkers = 1\nwokers = 2\n"), 3, 1,
              "unknown key \"wokers\" in [server]; did you mean \"workers\"?");
  ExpectError(WithBase("[limits]\n  zzz = 1\n"), 2, 3, "unknown key \"zzz\" in [limits]");
  ExpectError(WithBase("[admin]\naddress = \"127.0.0.1:9901\"\nallowed = []\n"), 3, 1,
              "unknown key \"allowed\" in [admin]");
  ExpectError(WithBase("[sever]\nworkers = 1\n"), 1, 2,
              "unknown key \"sever\" in the top level; did you mean \"server\"?");
  ExpectError(WithBase("timeout = \"1s\"\n"), 1, 1, "unknown key \"timeout\" in the top level");
  ExpectError(WithBase("[server]\nrequest_id_header = \"X Id\"\n"), 2, 21,
              "expected a header name");
  ExpectError(WithBase("[server]\nuser = \"a b\"\n"), 2, 8, "expected a user or group name");
  ExpectError(WithBase("[server]\ngroup = \"g\"\n"), 2, 9, "set user too");
}

// Unknown keys inside inline tables (backends, health) and in array-of-table entries.
TEST(LoadConfigErrors, UnknownKeyInInlineTables) {
  ExpectError(R"([[listener]]
name = "http"
address = "127.0.0.1:8080"
[[pool]]
name = "app"
backends = [{ address = "127.0.0.1:9001" }, { address = "127.0.0.1:9002", wieght = 2 }]
[[route]]
pool = "app"
)",
              6, 75,
              "unknown key \"wieght\" in [[pool]] \"app\" backend #2; did you mean \"weight\"?");
  ExpectError(R"([[listener]]
name = "http"
address = "127.0.0.1:8080"
[[pool]]
name = "app"
backends = [{ address = "127.0.0.1:9001" }]
health = { path = "/", intervall = "1s" }
[[route]]
pool = "app"
)",
              7, 24, "unknown key \"intervall\" in [[pool]] \"app\" health");
  ExpectError(R"([[listener]]
name = "http"
address = "127.0.0.1:8080"
port = 80
)",
              4, 1, "unknown key \"port\" in [[listener]] #1");
  ExpectError(R"([[listener]]
name = "http"
address = "127.0.0.1:8080"
[[pool]]
name = "app"
backends = [{ address = "127.0.0.1:9001" }]
[[route]]
pool = "app"
prefix = "/x"
)",
              9, 1, "unknown key \"prefix\" in [[route]] #1");
}

// A value of the wrong TOML type says what was expected and what was found.
TEST(LoadConfigErrors, WrongType) {
  ExpectError(WithBase("[server]\nworkers = \"4\"\n"), 2, 11,
              "[server] workers: expected an integer, got a string");
  ExpectError(WithBase("[server]\nworkers = 1.5\n"), 2, 11,
              "expected an integer, got a floating-point number");
  ExpectError(WithBase("[server]\naccess_log = 1\n"), 2, 14,
              "[server] access_log: expected a string, got an integer");
  ExpectError(WithBase("[server]\nlog_level = true\n"), 2, 13, "expected a string, got a boolean");
  ExpectError(WithBase("server = 1\n"), 1, 10, "expected a table, got an integer");
  ExpectError("[listener]\nname = \"x\"\n", 1, 1,
              "expected [[listener]] (an array of tables), got a table");
  ExpectError(R"([[listener]]
name = "http"
address = "127.0.0.1:8080"
[[pool]]
name = "app"
backends = [{ address = "127.0.0.1:9001" }]
[[route]]
pool = "app"
compress = "yes"
)",
              9, 12, "[[route]] #1 compress: expected a boolean (true or false), got a string");
}

// Integers outside their range name the range.
TEST(LoadConfigErrors, OutOfRange) {
  ExpectError(WithBase("[server]\nworkers = 2000\n"), 2, 11,
              "[server] workers: expected an integer from 0 to 1024, got 2000");
  ExpectError(WithBase("[server]\nmax_connections = 8\n"), 2, 19, "from 16 to");
  ExpectError(WithBase("[server]\nrecv_buffers = 1000\n"), 2, 16,
              "expected a power of two from 1 to 32768, got 1000");
  ExpectError(WithBase("[server]\nsq_entries = 4096\ncq_entries = 16\n"), 3, 14,
              "expected 0 or at least sq_entries (4096)");
  ExpectError(WithBase("[limits]\nheader_count = 0\n"), 2, 16, "from 1 to 10000, got 0");
  ExpectError(WithBase("[limits]\nkeepalive_requests = -1\n"), 2, 22, "of at least 1, got -1");
  ExpectError(WithBase("[limits]\nmax_concurrent_streams = 0\n"), 2, 26, "from 1 to 65536, got 0");
  ExpectError(WithBase("[server]\nlog_level = \"verbose\"\n"), 2, 13,
              "expected one of \"trace\", \"debug\", \"info\", \"warn\", \"error\", \"critical\", "
              "\"off\", got \"verbose\"");
  ExpectError(WithBase("[server]\naccess_log_format = \"xml\"\n"), 2, 21,
              "expected one of \"text\", \"json\", got \"xml\"");
  ExpectError(WithBase("[server]\naccess_log = \"\"\n"), 2, 14, "expected a non-empty string");
}

// Durations: malformed, zero, integer instead of string, too long.
TEST(LoadConfigErrors, BadDuration) {
  ExpectError(WithBase("[limits]\nheader_timeout = \"10 seconds\"\n"), 2, 18,
              "[limits] header_timeout: expected a duration such as \"2s\" or \"150ms\", got "
              "\"10 seconds\"");
  ExpectError(WithBase("[limits]\nidle_timeout = \"0s\"\n"), 2, 16,
              "expected a duration greater than zero, got \"0s\"");
  ExpectError(WithBase("[limits]\nidle_timeout = 60\n"), 2, 16,
              "expected a duration string such as \"2s\" or \"150ms\", got an integer");
  ExpectError(WithBase("[limits]\nidle_timeout = \"9000h\"\n"), 2, 16, "at most 8760h");
  ExpectError(WithBase("[limits]\nidle_timeout = \"99999999999999999999s\"\n"), 2, 16,
              "expected a duration such as");
}

// Sizes: malformed, out of range, overflow.
TEST(LoadConfigErrors, BadSize) {
  ExpectError(WithBase("[limits]\nheader_bytes = \"16 potatoes\"\n"), 2, 16,
              "[limits] header_bytes: expected a size such as \"16KiB\", got \"16 potatoes\"");
  ExpectError(WithBase("[limits]\nheader_bytes = \"2MiB\"\n"), 2, 16,
              "expected a size from 1KiB to 1MiB, got \"2MiB\"");
  ExpectError(WithBase("[limits]\nheader_bytes = 100\n"), 2, 16,
              "expected a size from 1KiB to 1MiB, got 100");
  ExpectError(WithBase("[limits]\nbody_bytes = \"99999999999GiB\"\n"), 2, 14,
              "expected a size such as \"16KiB\", got \"99999999999GiB\"");
  ExpectError(WithBase("[limits]\nbody_bytes = -1\n"), 2, 14, "got -1");
  ExpectError(WithBase("[limits]\nbody_bytes = true\n"), 2, 14, "got a boolean");
  ExpectError(WithBase("[server]\nrecv_buffer_size = \"4MiB\"\n"), 2, 20,
              "[server] recv_buffer_size: expected a size from 1KiB to 1MiB");
}

// Listener and pool names are unique; the error points at the duplicate and the original.
TEST(LoadConfigErrors, DuplicateName) {
  ExpectError(R"([[listener]]
name = "http"
address = "127.0.0.1:8080"
[[listener]]
name = "http"
address = "127.0.0.1:8081"
)",
              5, 8, "listener name \"http\" is already used at line 1");
  ExpectError(R"([[listener]]
name = "http"
address = "127.0.0.1:8080"
[[pool]]
name = "app"
backends = [{ address = "127.0.0.1:9001" }]
[[pool]]
name = "app"
backends = [{ address = "127.0.0.1:9002" }]
)",
              8, 8, "pool name \"app\" is already used at line 4");
}

// Two listeners on the same address (port 0 excepted), or a listener on the admin address.
TEST(LoadConfigErrors, DuplicateAddress) {
  ExpectError(R"([[listener]]
name = "a"
address = "127.0.0.1:8080"
[[listener]]
name = "b"
address = "127.0.0.1:8080"
)",
              6, 11, "address \"127.0.0.1:8080\" is already used by listener \"a\"");
  ExpectError(R"([admin]
address = "[::1]:9901"
[[listener]]
name = "a"
address = "[0:0::1]:9901"
)",
              5, 11, "is already used by [admin]");
  // Two "pick a port" listeners do not collide.
  const Config c = LoadOk(R"([[listener]]
name = "a"
address = "127.0.0.1:0"
[[listener]]
name = "b"
address = "127.0.0.1:0"
[[pool]]
name = "app"
backends = [{ address = "127.0.0.1:9001" }]
[[route]]
pool = "app"
)");
  EXPECT_EQ(c.listeners.size(), 2u);
}

// Names, required keys and missing sections.
TEST(LoadConfigErrors, NamesAndRequiredKeys) {
  ExpectError("[[listener]]\naddress = \"127.0.0.1:80\"\n", 1, 1,
              "[[listener]] #1: missing required key \"name\"");
  ExpectError("[[listener]]\nname = \"http\"\n", 1, 1,
              "[[listener]] \"http\": missing required key \"address\"");
  ExpectError("[[listener]]\nname = \"my listener\"\naddress = \"127.0.0.1:80\"\n", 2, 8,
              "expected 1 to 64 letters, digits, '_' or '-', got \"my listener\"");
  ExpectError("[admin]\naddress = \"127.0.0.1:9\"\n[[listener]]\nname = \"admin\"\n", 4, 8,
              "reserved for [admin]");
  ExpectError("[[pool]]\nname = \"app\"\n", 1, 1,
              "[[pool]] \"app\": missing required key \"backends\"");
  ExpectError("[[pool]]\nname = \"app\"\nbackends = []\n", 3, 12,
              "expected a non-empty array of tables");
  ExpectError("[[pool]]\nname = \"app\"\nbackends = [\"127.0.0.1:1\"]\n", 3, 13,
              "backend #1: expected a table");
  ExpectError("[[pool]]\nname = \"app\"\nbackends = [{ weight = 2 }]\n", 3, 13,
              "[[pool]] \"app\" backend #1: missing required key \"address\"");
  ExpectError("[admin]\nallow = []\n", 1, 1, "[admin]: missing required key \"address\"");
  ExpectError(R"([[listener]]
name = "http"
address = "127.0.0.1:8080"
[[pool]]
name = "app"
backends = [{ address = "127.0.0.1:9001" }]
[[route]]
host = "*"
)",
              7, 1, "[[route]] #1: missing required key \"pool\"");
}

// Whole-config checks: at least one listener, pool and route (no position: nothing to point at).
TEST(LoadConfigErrors, MissingSections) {
  ExpectError("", 0, 0, "no [[listener]] defined");
  ExpectError("[[listener]]\nname = \"http\"\naddress = \"127.0.0.1:8080\"\n", 0, 0,
              "no [[pool]] defined");
  ExpectError(R"([[listener]]
name = "http"
address = "127.0.0.1:8080"
[[pool]]
name = "app"
backends = [{ address = "127.0.0.1:9001" }]
)",
              0, 0, "no [[route]] defined");
}

// A route naming a pool that does not exist is refused at the value.
TEST(LoadConfigErrors, UnknownPool) {
  ExpectError(R"([[listener]]
name = "http"
address = "127.0.0.1:8080"
[[pool]]
name = "app"
backends = [{ address = "127.0.0.1:9001" }]
[[route]]
pool = "nope"
)",
              8, 8, "route pool \"nope\" is not defined");
}

// An algorithm that does not exist is refused at its value.
TEST(LoadConfigErrors, UnknownAlgorithm) {
  ExpectError(R"([[pool]]
name = "app"
algorithm = "random"
)",
              3, 13, "expected one of \"round_robin\", \"least_conn\", \"ip_hash\"");
}

// Addresses must be numeric with a port; backends cannot use port 0.
TEST(LoadConfigErrors, BadAddress) {
  ExpectError("[[listener]]\nname = \"http\"\naddress = \"localhost:8080\"\n", 3, 11,
              "[[listener]] \"http\" address: expected an address such as \"127.0.0.1:8080\" or "
              "\"[::1]:8080\", got \"localhost:8080\"");
  ExpectError("[[listener]]\nname = \"http\"\naddress = \"127.0.0.1\"\n", 3, 11,
              "missing \":port\"");
  ExpectError("[[listener]]\nname = \"http\"\naddress = \"127.0.0.1:65536\"\n", 3, 11,
              "port must be a number from 0 to 65535");
  ExpectError("[[listener]]\nname = \"http\"\naddress = 8080\n", 3, 11,
              "expected a string, got an integer");
  ExpectError("[[pool]]\nname = \"app\"\nbackends = [{ address = \"10.0.0.1:0\" }]\n", 3, 25,
              "port 0 is not valid here");
  ExpectError(
      "[[pool]]\nname = \"app\"\nbackends = [{ address = \"10.0.0.1:80\" }, { address = "
      "\"10.0.0.1:80\" }]\n",
      3, 54, "backend \"10.0.0.1:80\" is listed twice in this pool");
  ExpectError("[admin]\naddress = \"127.0.0.1:99999\"\n", 2, 11, "[admin] address: expected an");
}

// Admin allow-lists take CIDRs and refuse junk, bad prefixes and host bits.
TEST(LoadConfigErrors, BadCidr) {
  ExpectError("[admin]\naddress = \"127.0.0.1:9901\"\nallow = [\"127.0.0.0/8\", \"localhost\"]\n",
              3, 25, "[admin] allow: expected a CIDR such as \"127.0.0.0/8\"");
  ExpectError("[admin]\naddress = \"127.0.0.1:9901\"\nallow = [\"10.0.0.0/33\"]\n", 3, 10,
              "expected a prefix length from 0 to 32");
  ExpectError("[admin]\naddress = \"127.0.0.1:9901\"\nallow = [\"::/129\"]\n", 3, 10,
              "from 0 to 128");
  ExpectError("[admin]\naddress = \"127.0.0.1:9901\"\nallow = [\"10.0.0.1/8\"]\n", 3, 10,
              "bits set below the /8 prefix");
  ExpectError("[admin]\naddress = \"127.0.0.1:9901\"\nallow = \"127.0.0.1/8\"\n", 3, 9,
              "expected an array of CIDR strings");
  ExpectError("[admin]\naddress = \"127.0.0.1:9901\"\nallow = [1]\n", 3, 10,
              "expected a string, got an integer");
  ExpectError("[admin]\naddress = \"127.0.0.1:9901\"\nallow = [\"10.0.0.0/\"]\n", 3, 10,
              "prefix length");
}

// Route host and path_prefix validation.
TEST(LoadConfigErrors, BadRoute) {
  const std::string pools = R"([[listener]]
name = "http"
address = "127.0.0.1:8080"
[[pool]]
name = "app"
backends = [{ address = "127.0.0.1:9001" }]
[[route]]
pool = "app"
)";
  ExpectError(pools + "host = \"exa mple.com\"\n", 9, 8,
              "[[route]] #1 host: expected a host name (\"example.com\"), a wildcard");
  ExpectError(pools + "host = \"*example.com\"\n", 9, 8, "expected a host name");
  ExpectError(pools + "host = \"a..b\"\n", 9, 8, "expected a host name");
  ExpectError(pools + "host = \"example.com:80\"\n", 9, 8, "expected a host name");
  ExpectError(pools + "host = \"\"\n", 9, 8, "expected a host name");
  ExpectError(pools + "path_prefix = \"api\"\n", 9, 15,
              "[[route]] #1 path_prefix: expected a path starting with '/'");
  ExpectError(pools + "path_prefix = \"/a b\"\n", 9, 15, "expected a path starting with '/'");
  ExpectError(pools + "[[route]]\npool = \"app\"\n", 9, 1,
              "[[route]] #2: same host and path_prefix as [[route]] #1");
  ExpectError(pools + "add_headers = { \"Bad Name\" = \"x\" }\n", 9, 17,
              "header name \"Bad Name\" is not a valid token");
  ExpectError(pools + "add_headers = { \"X-A\" = \"a\\r\\nInjected: 1\" }\n", 9, 25,
              "must not contain CR, LF, NUL or other control characters, got "
              "\"a\\x0d\\x0aInjected: 1\"");
  ExpectError(pools + "add_headers = { \"X-A\" = 1 }\n", 9, 25,
              "[[route]] #1 add_headers X-A: expected a string, got an integer");
  ExpectError(pools + "add_headers = { \"Content-Length\" = \"1\" }\n", 9, 17,
              "cannot be added: torii manages it");
  ExpectError(pools + "add_headers = { \"x-a\" = \"1\", \"X-A\" = \"2\" }\n", 9, 30,
              "header \"X-A\" is listed twice");
  ExpectError(pools + "add_headers = \"X-A: 1\"\n", 9, 15, "expected a table, got a string");
}

// Health checks validate their own keys.
TEST(LoadConfigErrors, BadHealth) {
  const std::string head = R"([[pool]]
name = "app"
backends = [{ address = "127.0.0.1:9001" }]
)";
  ExpectError(head + "health = { path = \"healthz\" }\n", 4, 19,
              "[[pool]] \"app\" health path: expected a path starting with '/'");
  ExpectError(head + "health = { interval = \"2\" }\n", 4, 23,
              "[[pool]] \"app\" health interval: expected a duration");
  ExpectError(head + "health = { rise = 0 }\n", 4, 19, "from 1 to 1000, got 0");
  ExpectError(head + "health = true\n", 4, 10, "expected a table, got a boolean");
  ExpectError(head + "retries = 11\n", 4, 11,
              "[[pool]] \"app\" retries: expected an integer from 0 to 10");
  ExpectError(head + "keepalive = 10001\n", 4, 13, "from 0 to 10000");
  ExpectError(head + "connect_timeout = \"0ms\"\n", 4, 19, "greater than zero");
  ExpectError(R"([[pool]]
name = "app"
backends = [{ address = "127.0.0.1:9001", weight = 0 }]
)",
              3, 52, "backend #1 weight: expected an integer from 1 to 256, got 0");
  ExpectError(R"([[pool]]
name = "app"
backends = [{ address = "127.0.0.1:9001", weight = 257 }]
)",
              3, 52, "from 1 to 256, got 257");
  ExpectError(R"([[pool]]
name = "app"
backends = [{ address = "127.0.0.1:9001", backup = 1 }]
)",
              3, 52, "backup: expected a boolean");
}

// ---------------------------------------------------------------------------------------------
// The value parsers on their own.

TEST(ParseDuration, Table) {
  struct Case {
    std::string_view text;
    std::optional<int64_t> ms;
  };
  const Case cases[] = {
      {"150ms", 150},
      {"2s", 2000},
      {"1m", 60000},
      {"1h", 3600000},
      {"500us", 1},
      {"1000us", 1},
      {"1001us", 2},
      {"0us", 0},
      {"0s", 0},
      {"0ms", 0},
      {"007s", 7000},
      {"8760h", 8760LL * 3600 * 1000},
      {"", std::nullopt},
      {"s", std::nullopt},
      {"10", std::nullopt},
      {"10 s", std::nullopt},
      {" 10s", std::nullopt},
      {"10s ", std::nullopt},
      {"-1s", std::nullopt},
      {"+1s", std::nullopt},
      {"1.5s", std::nullopt},
      {"1S", std::nullopt},
      {"1d", std::nullopt},
      {"1sec", std::nullopt},
      {"1m30s", std::nullopt},
      {"18446744073709551615ms", std::nullopt},  // above int64 milliseconds
      {"18446744073709551616s", std::nullopt},   // above uint64
      {"9223372036854775807h", std::nullopt},    // multiplication overflow
      {"9223372036854775807ms", 9223372036854775807LL},
  };
  for (const Case& c : cases) {
    const std::optional<Duration> d = ParseDuration(c.text);
    if (c.ms) {
      ASSERT_TRUE(d.has_value()) << c.text;
      EXPECT_EQ(d->count(), *c.ms) << c.text;
    } else {
      EXPECT_FALSE(d.has_value()) << c.text << " → " << d->count();
    }
  }
}

TEST(ParseSize, Table) {
  struct Case {
    std::string_view text;
    std::optional<uint64_t> bytes;
  };
  const Case cases[] = {
      {"0", 0},
      {"512", 512},
      {"512B", 512},
      {"16KiB", 16 * 1024},
      {"16MiB", 16 * 1024 * 1024},
      {"1GiB", 1024ULL * 1024 * 1024},
      {"2TiB", 2ULL << 40},
      {"10KB", 10000},
      {"10MB", 10000000},
      {"3GB", 3000000000ULL},
      {"1TB", 1000000000000ULL},
      {"18446744073709551615", 18446744073709551615ULL},
      {"18446744073709551616", std::nullopt},  // overflow while reading digits
      {"17179869184GiB", std::nullopt},        // 2^34 GiB = 2^64: overflow in the multiply
      {"17179869183GiB", 17179869183ULL << 30},
      {"", std::nullopt},
      {"KiB", std::nullopt},
      {"16 KiB", std::nullopt},
      {"16kib", std::nullopt},
      {"16K", std::nullopt},
      {"16 potatoes", std::nullopt},
      {"-1", std::nullopt},
      {"1.5MiB", std::nullopt},
      {"16KiB ", std::nullopt},
  };
  for (const Case& c : cases) {
    const std::optional<uint64_t> bytes = ParseSize(c.text);
    if (c.bytes) {
      ASSERT_TRUE(bytes.has_value()) << c.text;
      EXPECT_EQ(*bytes, *c.bytes) << c.text;
    } else {
      EXPECT_FALSE(bytes.has_value()) << c.text << " → " << *bytes;
    }
  }
}

}  // namespace
}  // namespace torii::conf

namespace torii::conf {
namespace {

const char kPoolHead[] = R"([[listener]]
name = "http"
address = "127.0.0.1:8080"
[[pool]]
name = "app"
backends = [{ address = "127.0.0.1:9001" }, { address = "127.0.0.1:9002", backup = true }]
)";

std::string PoolWith(std::string_view keys, std::string_view route = "[[route]]\npool = \"app\"\n") {
  return std::string(kPoolHead) + std::string(keys) + std::string(route);
}

// PROXY protocol: received on a listener (only with trusted_proxies), sent by a pool.
TEST(LoadConfig, ProxyProtocol) {
  const std::string trusted = "[server]\ntrusted_proxies = [\"10.0.0.0/8\"]\n";
  const Config c = LoadOk(trusted +
                          "[[listener]]\nname = \"http\"\naddress = "
                          "\"127.0.0.1:8080\"\nproxy_protocol = true\n[[pool]]\nname = \"app\"\n"
                          "backends = [{ address = \"127.0.0.1:9001\" }]\nsend_proxy = \"v2\"\n"
                          "[[route]]\npool = \"app\"\n");
  EXPECT_TRUE(c.listeners[0].proxy_protocol);
  EXPECT_EQ(c.pools[0].send_proxy, 2);
  EXPECT_EQ(LoadOk(PoolWith("send_proxy = \"v1\"\n")).pools[0].send_proxy, 1);
  EXPECT_EQ(LoadOk(PoolWith("")).pools[0].send_proxy, 0);
  ExpectError(
      "[[listener]]\nname = \"http\"\naddress = \"127.0.0.1:8080\"\n"
      "proxy_protocol = true\n[[pool]]\nname = \"app\"\nbackends = []\n"
      "[[route]]\npool = \"app\"\n",
      4, 18, "trusted_proxies, which is empty");
  ExpectError(PoolWith("send_proxy = \"v3\"\n"), 7, 14, "expected \"v1\" or \"v2\"");
}

// TCP Fast Open: a queue length on a listener (0 = off, the default), a switch on an
// HTTP/1.1 pool; an HTTP/2 pool has no per-request connect to shorten.
TEST(LoadConfig, TcpFastOpen) {
  EXPECT_EQ(LoadOk(PoolWith("")).listeners[0].tcp_fastopen, 0u);
  EXPECT_FALSE(LoadOk(PoolWith("")).pools[0].tcp_fastopen);
  EXPECT_TRUE(LoadOk(PoolWith("tcp_fastopen = true\n")).pools[0].tcp_fastopen);
  const Config c = LoadOk(
      "[[listener]]\nname = \"http\"\naddress = \"127.0.0.1:8080\"\ntcp_fastopen = 256\n"
      "[[pool]]\nname = \"app\"\nbackends = [{ address = \"127.0.0.1:9001\" }]\n"
      "[[route]]\npool = \"app\"\n");
  EXPECT_EQ(c.listeners[0].tcp_fastopen, 256u);
  ExpectError(
      "[[listener]]\nname = \"http\"\naddress = \"127.0.0.1:8080\"\ntcp_fastopen = -1\n"
      "[[pool]]\nname = \"app\"\nbackends = []\n[[route]]\npool = \"app\"\n",
      4, 16, "tcp_fastopen");
  ExpectError(PoolWith("protocol = \"h2c\"\ntcp_fastopen = true\n"), 8, 16, "HTTP/1.1 pools only");
}

// protocol: HTTP/1.1 by default, h2c cleartext, h2 only over tls (offering ALPN h2 alone);
// a PROXY header names one client, so never on a multiplexed pool.
TEST(LoadConfig, PoolProtocol) {
  using P = PoolConfig::Protocol;
  EXPECT_EQ(LoadOk(PoolWith("")).pools[0].protocol, P::kHttp11);
  EXPECT_EQ(LoadOk(PoolWith("")).pools[0].max_streams, 128u);
  const Config c = LoadOk(PoolWith("protocol = \"h2c\"\nmax_streams = 8\n"));
  EXPECT_EQ(c.pools[0].protocol, P::kH2c);
  EXPECT_EQ(c.pools[0].max_streams, 8u);
  const Config tls = LoadOk(PoolWith("protocol = \"h2\"\ntls = { verify = false }\n"));
  EXPECT_EQ(tls.pools[0].protocol, P::kH2);
  EXPECT_EQ(tls.pools[0].tls->alpn, std::vector<std::string>{"h2"});
  ExpectError(PoolWith("protocol = \"h2\"\n"), 7, 12, "add tls");
  ExpectError(PoolWith("protocol = \"h2c\"\ntls = { verify = false }\n"), 7, 12, "cleartext");
  ExpectError(PoolWith("protocol = \"h3\"\n"), 7, 12, "expected \"http/1.1\", \"h2\" or \"h2c\"");
  ExpectError(PoolWith("protocol = \"h2c\"\nsend_proxy = \"v2\"\n"), 8, 14, "carries many");
  ExpectError(PoolWith("max_streams = 0\n"), 7, 15, "max_streams");
}

// Client certificates: client_auth on a TLS listener, route demands, a pool's certificate.
TEST(LoadConfig, ClientCertificates) {
  const std::string head = "[[listener]]\nname = \"https\"\naddress = \"127.0.0.1:8443\"\n";
  const std::string tls = "tls = { certificates = [{ cert = \"/s.crt\", key = \"/s.key\" }] }\n";
  const std::string rest =
      "[[pool]]\nname = \"app\"\nbackends = [{ address = \"127.0.0.1:9001\" }]\n"
      "tls = { ca = \"/ca.pem\", cert = \"/c.crt\", key = \"/c.key\" }\n"
      "[[route]]\npool = \"app\"\nclient_cert_allow = [\"ops.example.com\"]\n";
  const Config c = LoadOk(head + tls +
                          "client_auth = { ca = \"/ca.pem\", mode = \"optional\", crl = "
                          "\"/c.crl\", forward = false }\n" +
                          rest);
  const tls::ClientAuthOptions& auth = c.listeners[0].tls->client_auth;
  EXPECT_EQ(auth.mode, tls::ClientAuthOptions::Mode::kOptional);
  EXPECT_EQ(auth.ca, "/ca.pem");
  EXPECT_EQ(auth.crl, "/c.crl");
  EXPECT_FALSE(c.listeners[0].client_cert_forward);
  EXPECT_EQ(c.pools[0].tls->cert, "/c.crt");
  EXPECT_TRUE(c.routes[0].require_client_cert);  // an allow list implies it
  EXPECT_EQ(c.routes[0].client_cert_allow, std::vector<std::string>{"ops.example.com"});
  EXPECT_EQ(LoadOk(head + tls + "client_auth = { ca = \"/ca.pem\" }\n" + rest)
                .listeners[0]
                .tls->client_auth.mode,
            tls::ClientAuthOptions::Mode::kRequire);
  ExpectError(head + "client_auth = { ca = \"/ca.pem\" }\n" + rest, 4, 15,
              "client certificates need TLS");
  ExpectError(head + tls + "client_auth = { ca = \"/ca.pem\", mode = \"maybe\" }\n" + rest, 5, 40,
              "require");
}

// Route rewrites: prefixes, Host, request and response fields; each misuse names its key.
TEST(LoadRoutes, Rewrites) {
  const Config c = LoadOk(PoolWith("", R"([[route]]
pool = "app"
path_prefix = "/api/"
strip_prefix = "/api"
host_rewrite = "api.internal:8080"
request_headers = { set = { "X-Env" = "prod" }, add = { "X-Tag" = "a" }, remove = ["X-Debug"] }
response_headers = { set = { "Server" = "edge" }, remove = ["X-Powered-By"] }
[[route]]
pool = "app"
path_prefix = "/old/"
replace_prefix = "/new/"
)"));
  const RouteConfig& r = c.routes[0];
  EXPECT_EQ(r.strip_prefix, "/api");
  EXPECT_FALSE(r.replace_prefix.has_value());
  EXPECT_EQ(r.host_rewrite, "api.internal:8080");
  EXPECT_EQ(r.request_headers.set.size(), 1u);
  EXPECT_EQ(r.request_headers.add[0].first, "X-Tag");
  EXPECT_EQ(r.request_headers.remove, std::vector<std::string>{"x-debug"});
  EXPECT_EQ(r.response_headers.set[0].second, "edge");
  EXPECT_EQ(r.response_headers.remove, std::vector<std::string>{"x-powered-by"});
  EXPECT_EQ(c.routes[1].replace_prefix, "/new/");
  EXPECT_FALSE(c.routes[1].connect_timeout.has_value());
  const Config t = LoadOk(PoolWith("", "[[route]]\npool = \"app\"\nconnect_timeout = \"250ms\"\n"
                                       "response_timeout = \"2s\"\n"));
  EXPECT_EQ(t.routes[0].connect_timeout, std::chrono::milliseconds(250));
  EXPECT_EQ(t.routes[0].response_timeout, std::chrono::seconds(2));

  const std::string route = "[[route]]\npool = \"app\"\n";
  ExpectError(PoolWith("", route + "strip_prefix = \"/a\"\nreplace_prefix = \"/b\"\n"), 10, 18,
              "one of strip_prefix, replace_prefix or regex_rewrite");
  const Config rx = LoadOk(PoolWith(
      "", route + "regex_rewrite = { pattern = '^/u/([0-9]+)$', substitution = '/users/\\1' }\n"));
  EXPECT_EQ(rx.routes[0].rewrite_pattern, "^/u/([0-9]+)$");
  EXPECT_EQ(rx.routes[0].rewrite_substitution, "/users/\\1");
  ExpectError(PoolWith("", route + "regex_rewrite = { pattern = '(' , substitution = '/' }\n"), 9,
              29, "invalid regular expression");
  ExpectError(PoolWith("", route + "regex_rewrite = { pattern = '/(a)', substitution = '/\\2' }\n"),
              9, 52, "parenthesized");
  EXPECT_EQ(rx.routes[0].upgrades, std::vector<std::string>{"websocket"});  // the default
  const Config up = LoadOk(PoolWith("", route + "upgrades = [\"WebSocket\", \"foo\"]\n"));
  EXPECT_EQ(up.routes[0].upgrades, (std::vector<std::string>{"websocket", "foo"}));
  EXPECT_TRUE(LoadOk(PoolWith("", route + "upgrades = []\n")).routes[0].upgrades.empty());
  ExpectError(PoolWith("", route + "upgrades = [\"h2c\"]\n"), 9, 13, "h2c is not tunnelled");
  ExpectError(PoolWith("", route + "upgrades = \"websocket\"\n"), 9, 12, "expected an array");
  // trailers: gRPC's by default, lowercased, never a framing field.
  EXPECT_EQ(rx.routes[0].trailers,
            (std::vector<std::string>{"grpc-status", "grpc-message", "grpc-status-details-bin"}));
  EXPECT_EQ(LoadOk(PoolWith("", route + "trailers = [\"X-Sum\"]\n")).routes[0].trailers,
            std::vector<std::string>{"x-sum"});
  EXPECT_TRUE(LoadOk(PoolWith("", route + "trailers = []\n")).routes[0].trailers.empty());
  ExpectError(PoolWith("", route + "trailers = [\"Content-Length\"]\n"), 9, 12, "never a trailer");
  ExpectError(PoolWith("", route + "trailers = [\"a b\"]\n"), 9, 13, "expected a header name");
  ExpectError(PoolWith("", route + "regex_rewrite = { pattern = '/a' }\n"), 9, 17, "substitution");
  ExpectError(PoolWith("", route + "strip_prefix = \"/a\"\nregex_rewrite = { pattern = '/a', "
                                   "substitution = '/b' }\n"),
              10, 17, "one of strip_prefix");
  ExpectError(PoolWith("", route + "strip_prefix = \"api\"\n"), 9, 16,
              "expected a path starting with '/'");
  ExpectError(PoolWith("", route + "host_rewrite = \"a b\"\n"), 9, 16, "expected a host name");
  ExpectError(PoolWith("", route + "request_headers = { set = { \"Host\" = \"x\" } }\n"), 9, 29,
              "torii manages it");
  ExpectError(PoolWith("", route + "request_headers = { add = { \"X-Forwarded-For\" = \"1\" } }\n"),
              9, 29, "is written by torii");
  ExpectError(PoolWith("", route + "response_headers = { remove = [\"Content-Length\"] }\n"), 9,
              31, "cannot be removed");
  ExpectError(PoolWith("", route + "request_headers = { drop = [] }\n"), 9, 21,
              "unknown key \"drop\"");
}

// Route matchers: path kinds, methods, header and query fields, return routes.
TEST(LoadRoutes, Matchers) {
  const Config c = LoadOk(PoolWith("", R"([[route]]
path_regex = "/users/[0-9]+"
methods = ["GET", "HEAD"]
headers = [{ name = "X-Canary", value = "1" }, { name = "X-Debug", present = false }]
query = [{ name = "v", regex = "2|3" }, { name = "x", present = true }]
pool = "app"
[[route]]
path_exact = "/robots.txt"
return = { status = 200, body = "ok" }
[[route]]
pool = "app"
)"));
  const RouteConfig& r = c.routes[0];
  EXPECT_EQ(r.path_regex, "/users/[0-9]+");
  EXPECT_EQ(r.methods, (std::vector<std::string>{"GET", "HEAD"}));
  ASSERT_EQ(r.headers.size(), 2u);
  EXPECT_EQ(r.headers[0].name, "x-canary");
  EXPECT_EQ(r.headers[0].kind, FieldMatch::Kind::kExact);
  EXPECT_EQ(r.headers[1].kind, FieldMatch::Kind::kAbsent);
  ASSERT_EQ(r.query.size(), 2u);
  EXPECT_EQ(r.query[0].kind, FieldMatch::Kind::kRegex);
  EXPECT_EQ(r.query[1].kind, FieldMatch::Kind::kPresent);
  EXPECT_EQ(c.routes[1].path_exact, "/robots.txt");
  EXPECT_EQ(c.routes[1].return_status, 200);
  EXPECT_EQ(c.routes[1].return_body, "ok");

  const std::string pool = "pool = \"app\"\n";
  ExpectError(PoolWith("", "[[route]]\n" + pool + "path_regex = \"(\"\n"), 9, 14,
              "invalid regular expression");
  ExpectError(PoolWith("", "[[route]]\n" + pool + "path_prefix = \"/\"\npath_exact = \"/a\"\n"),
              10, 14, "one of path_prefix, path_exact or path_regex");
  ExpectError(PoolWith("", "[[route]]\n" + pool + "methods = [\"get\"]\n"), 9, 12,
              "(uppercase)");
  ExpectError(PoolWith("", "[[route]]\n" + pool + "headers = [{ name = \"a\" }]\n"), 9, 21,
              "exactly one of value, present or regex");
  ExpectError(PoolWith("", "[[route]]\n" + pool + "query = [{ name = \"a\", regex = \"[\" }]\n"),
              9, 32, "invalid regular expression");
  ExpectError(PoolWith("", "[[route]]\n" + pool + "return = { status = 200 }\n"), 8, 1,
              "a return route answers itself");
  ExpectError(PoolWith("", "[[route]]\nreturn = { status = 99 }\n"), 8, 21, "from 200 to 599");
}

// split instead of pool: weights, stickiness, a forcing header or cookie; misuse refused.
TEST(LoadRoutes, Split) {
  const std::string two = std::string(kPoolHead) +
                          "[[pool]]\nname = \"v2\"\n"
                          "backends = [{ address = \"127.0.0.1:9003\" }]\n";
  const Config c = LoadOk(two + R"([[route]]
split = [{ pool = "app", weight = 95 }, { pool = "v2", weight = 5 }]
split_sticky = true
split_by = "cookie:pool"
)");
  const RouteConfig& r = c.routes[0];
  ASSERT_EQ(r.split.size(), 2u);
  EXPECT_EQ(r.split[1].pool, "v2");
  EXPECT_EQ(r.split[1].pool_index, 1u);
  EXPECT_EQ(r.split[0].weight, 95u);
  EXPECT_EQ(r.pool, "app");
  EXPECT_TRUE(r.split_sticky);
  ASSERT_TRUE(r.split_by.has_value());
  EXPECT_EQ(r.split_by->kind, HashKeyConfig::Kind::kCookie);

  ExpectError(two + "[[route]]\npool = \"app\"\nsplit = [{ pool = \"app\" }, { pool = \"v2\" }]\n",
              11, 8, "either pool or split");
  ExpectError(two + "[[route]]\nsplit = [{ pool = \"app\" }]\n", 11, 9, "at least two");
  ExpectError(two + "[[route]]\nsplit = [{ pool = \"app\" }, { pool = \"nope\" }]\n", 11, 37,
              "is not defined");
  ExpectError(
      two + "[[route]]\nsplit = [{ pool = \"app\", weight = 0 }, { pool = \"v2\", weight = 0 }]\n",
      11, 9, "above 0");
  ExpectError(two + "[[route]]\npool = \"app\"\nsplit_sticky = true\n", 12, 16, "only with split");
  ExpectError(
      two +
          "[[route]]\nsplit = [{ pool = \"app\" }, { pool = \"v2\" }]\nsplit_by = \"client_ip\"\n",
      12, 12, "header:NAME");
}

// error_pages: files read at load time, typed by extension; bad statuses and files refused.
TEST(LoadRoutes, ErrorPages) {
  const std::string dir = ::testing::TempDir();
  { std::ofstream(dir + "/torii-404.html") << "<p>gone</p>"; }
  const Config c = LoadOk("[server]\nerror_pages = { 404 = \"" + dir + "/torii-404.html\" }\n" +
                          PoolWith("", "[[route]]\npool = \"app\"\nerror_pages = { 503 = \"" + dir +
                                           "/torii-404.html\" }\n"));
  ASSERT_EQ(c.server.error_pages.size(), 1u);
  EXPECT_EQ(c.server.error_pages[0].status, 404);
  EXPECT_EQ(c.server.error_pages[0].body, "<p>gone</p>");
  EXPECT_EQ(c.server.error_pages[0].content_type, "text/html; charset=utf-8");
  ASSERT_EQ(c.routes[0].error_pages.size(), 1u);
  EXPECT_EQ(c.routes[0].error_pages[0].status, 503);
  ExpectError("[server]\nerror_pages = { 200 = \"x\" }\n", 2, 17, "from 400 to 599");
  ExpectError("[server]\nerror_pages = { 404 = \"/nonexistent/x.html\" }\n", 2, 23, "cannot read");
}

// A config file, or a TLS key, that every local user may write is refused (#18).
TEST(LoadConfigErrors, WorldWritableFilesRefused) {
  const std::string dir = ::testing::TempDir();
  const std::string conf = dir + "/torii-ww.toml";
  {
    std::ofstream(conf) << kPoolHead << "[[route]]\npool = \"app\"\n";
  }
  ::chmod(conf.c_str(), 0666);
  auto loaded = LoadConfigFile(conf);
  ASSERT_FALSE(loaded.has_value());
  EXPECT_NE(loaded.error().message.find("writable by every user"), std::string::npos);
  ::chmod(conf.c_str(), 0644);
  EXPECT_TRUE(LoadConfigFile(conf).has_value());

  const std::string key = dir + "/torii-ww.key";
  {
    std::ofstream(key) << "not a key";
  }
  ::chmod(key.c_str(), 0646);
  ExpectError(std::string("[[listener]]\nname = \"https\"\naddress = \"127.0.0.1:0\"\n"
                          "tls = { certificates = [{ cert = \"c.pem\", key = \"") +
                  key + "\" }] }\n",
              4, 49, "writable by every user");
}

TEST(LoadBalancing, AlgorithmsAndHashKeys) {
  EXPECT_EQ(LoadOk(PoolWith("algorithm = \"least_conn\"\n")).pools[0].algorithm,
            Algorithm::kLeastConn);
  Config c = LoadOk(PoolWith("algorithm = \"ip_hash\"\n"));
  EXPECT_EQ(c.pools[0].algorithm, Algorithm::kIpHash);
  EXPECT_EQ(c.pools[0].hash_key.kind, HashKeyConfig::Kind::kClientIp);
  c = LoadOk(PoolWith("algorithm = \"ip_hash\"\nhash_key = \"header:X-User-Id\"\n"));
  EXPECT_EQ(c.pools[0].hash_key.kind, HashKeyConfig::Kind::kHeader);
  EXPECT_EQ(c.pools[0].hash_key.name, "x-user-id");
  c = LoadOk(PoolWith("algorithm = \"ip_hash\"\nhash_key = \"cookie:Session\"\n"));
  EXPECT_EQ(c.pools[0].hash_key.kind, HashKeyConfig::Kind::kCookie);
  EXPECT_EQ(c.pools[0].hash_key.name, "Session");
  EXPECT_TRUE(c.pools[0].backends[1].backup);

  ExpectError(PoolWith("hash_key = \"header:X\"\n"), 7, 12, "only ip_hash pools hash a key");
  ExpectError(PoolWith("algorithm = \"ip_hash\"\nhash_key = \"header:\"\n"), 8, 12,
              "expected \"client_ip\", \"header:NAME\" or \"cookie:NAME\"");
  ExpectError(PoolWith("algorithm = \"ip_hash\"\nhash_key = \"query:id\"\n"), 8, 12,
              "got \"query:id\"");
  ExpectError(PoolWith("algorithm = \"ip_hash\"\nhash_key = \"header:a b\"\n"), 8, 12,
              "got \"header:a b\"");
}

TEST(LoadBalancing, HealthChecks) {
  Config c = LoadOk(PoolWith(
      "health = { path = \"/healthz\", host = \"app.internal\", interval = \"500ms\", "
      "timeout = \"200ms\", rise = 1, fall = 2, expect_status = [200, \"3xx\"] }\n"));
  ASSERT_TRUE(c.pools[0].health.has_value());
  const HealthConfig& h = *c.pools[0].health;
  EXPECT_EQ(h.path, "/healthz");
  EXPECT_EQ(h.host, "app.internal");
  EXPECT_EQ(h.interval, Duration(500));
  EXPECT_EQ(h.timeout, Duration(200));
  EXPECT_EQ(h.rise, 1u);
  EXPECT_EQ(h.fall, 2u);
  EXPECT_EQ(h.expect_status, (std::vector<StatusRange>{{200, 200}, {300, 399}}));
  // Defaults.
  c = LoadOk(PoolWith("health = { path = \"/up\" }\n"));
  EXPECT_EQ(c.pools[0].health->expect_status, (std::vector<StatusRange>{{200, 399}}));
  EXPECT_EQ(c.pools[0].health->rise, 2u);
  EXPECT_EQ(c.pools[0].health->fall, 3u);
  EXPECT_EQ(c.pools[0].health->type, HealthConfig::Type::kHttp);
  EXPECT_FALSE(LoadOk(PoolWith("")).pools[0].health.has_value());
  c = LoadOk(PoolWith("health = { type = \"tcp\" }\n"));
  EXPECT_EQ(c.pools[0].health->type, HealthConfig::Type::kTcp);
  ExpectError(PoolWith("health = { type = \"udp\" }\n"), 7, 19,
              "expected \"http\", \"tcp\" or \"grpc\"");
  // gRPC health checks: HTTP/2 pools only; a service name only for them.
  const Config grpc =
      LoadOk(PoolWith("protocol = \"h2c\"\nhealth = { type = \"grpc\", service = \"pkg.Svc\" }\n"));
  EXPECT_EQ(grpc.pools[0].health->type, HealthConfig::Type::kGrpc);
  EXPECT_EQ(grpc.pools[0].health->service, "pkg.Svc");
  ExpectError(PoolWith("health = { type = \"grpc\" }\n"), 7, 10, "speak HTTP/2");
  ExpectError(PoolWith("health = { service = \"x\" }\n"), 7, 22, "only a type = \"grpc\"");

  ExpectError(PoolWith("health = { path = \"up\" }\n"), 7, 19, "expected a path starting with '/'");
  ExpectError(PoolWith("health = { interval = \"1s\", timeout = \"2s\" }\n"), 7, 39,
              "must not be longer than interval");
  ExpectError(PoolWith("health = { expect_status = [99] }\n"), 7, 29,
              "expected an array of status codes");
  ExpectError(PoolWith("health = { expect_status = [\"6xx\"] }\n"), 7, 29, "got \"6xx\"");
  ExpectError(PoolWith("health = { expect_status = [] }\n"), 7, 28, "an empty array");
  ExpectError(PoolWith("health = { host = \"a b\" }\n"), 7, 19, "expected a host name");
  ExpectError(PoolWith("health = { rise = 0 }\n"), 7, 19, "rise");
  ExpectError(PoolWith("health = { paht = \"/\" }\n"), 7, 12, "did you mean \"path\"?");
}

TEST(LoadBalancing, PassiveHealth) {
  Config c = LoadOk(PoolWith(""));
  EXPECT_EQ(c.pools[0].max_fails, 3u);
  EXPECT_EQ(c.pools[0].fail_window, std::chrono::seconds(10));
  EXPECT_EQ(c.pools[0].max_eject, std::chrono::minutes(5));
  EXPECT_TRUE(c.pools[0].fail_status.empty());
  c = LoadOk(PoolWith("max_fails = 0\nfail_window = \"30s\"\nmax_eject = \"1m\"\n"
                      "fail_status = [\"5xx\"]\n"));
  EXPECT_EQ(c.pools[0].max_fails, 0u);
  EXPECT_EQ(c.pools[0].fail_window, std::chrono::seconds(30));
  EXPECT_EQ(c.pools[0].max_eject, std::chrono::minutes(1));
  EXPECT_EQ(c.pools[0].fail_status, (std::vector<StatusRange>{{500, 599}}));
  c = LoadOk(PoolWith("fail_status = [502, 503]\n"));
  EXPECT_EQ(c.pools[0].fail_status, (std::vector<StatusRange>{{502, 502}, {503, 503}}));

  ExpectError(PoolWith("fail_status = [404]\n"), 7, 16, "expected an array of status codes (500)");
  ExpectError(PoolWith("fail_window = \"10m\"\n"), 7, 15, "must be at least fail_window");
  ExpectError(PoolWith("fail_window = \"10s\"\nmax_eject = \"5s\"\n"), 8, 13,
              "must be at least fail_window");
  ExpectError(PoolWith("max_fails = -1\n"), 7, 13, "max_fails");
}

TEST(LoadBalancing, MaxConnsAndQueue) {
  Config c = LoadOk(PoolWith(""));
  EXPECT_EQ(c.pools[0].max_conns, 0u);
  EXPECT_EQ(c.pools[0].queue_timeout, std::chrono::seconds(5));
  c = LoadOk(PoolWith("max_conns = 100\nqueue_timeout = \"250ms\"\n"));
  EXPECT_EQ(c.pools[0].max_conns, 100u);
  EXPECT_EQ(c.pools[0].queue_timeout, Duration(250));
  ExpectError(PoolWith("max_conns = \"many\"\n"), 7, 13, "expected an integer");
  ExpectError(PoolWith("queue_timeout = \"0s\"\n"), 7, 17, "greater than zero");
}

TEST(LoadRouting, Redirects) {
  const std::string route = "[[route]]\nhost = \"old.example.com\"\n";
  Config c = LoadOk(PoolWith("", route + "redirect = \"https://new.example.com/\"\n"
                                         "[[route]]\npool = \"app\"\n"));
  ASSERT_EQ(c.routes.size(), 2u);
  EXPECT_EQ(c.routes[0].redirect, "https://new.example.com/");
  EXPECT_FALSE(c.routes[0].redirect_prefix);
  EXPECT_EQ(c.routes[0].redirect_status, 302);
  EXPECT_TRUE(c.routes[0].pool.empty());
  c = LoadOk(PoolWith("", route + "redirect_prefix = \"https://new.example.com\"\n"
                                  "redirect_status = 308\n"));
  EXPECT_EQ(c.routes[0].redirect, "https://new.example.com");
  EXPECT_TRUE(c.routes[0].redirect_prefix);
  EXPECT_EQ(c.routes[0].redirect_status, 308);
  c = LoadOk(PoolWith("", route + "redirect = \"/moved\"\nadd_headers = { \"X-A\" = \"1\" }\n"));
  EXPECT_EQ(c.routes[0].redirect, "/moved");

  ExpectError(PoolWith("", route + "redirect = \"ftp://x\"\n"), 9, 12, "expected an absolute URL");
  ExpectError(PoolWith("", route + "redirect = \"//evil.example\"\n"), 9, 12,
              "expected an absolute URL");
  ExpectError(PoolWith("", route + "redirect = \"https://a/b c\"\n"), 9, 12,
              "expected an absolute URL");
  ExpectError(PoolWith("", route + "redirect_prefix = \"https://a/\"\n"), 9, 19,
              "not ending in '/'");
  ExpectError(PoolWith("", route + "redirect = \"/a\"\nredirect_prefix = \"/b\"\n"), 10, 19,
              "not both");
  ExpectError(PoolWith("", route + "redirect = \"/a\"\npool = \"app\"\n"), 10, 1,
              "a redirect route answers itself");
  ExpectError(PoolWith("", route + "redirect = \"/a\"\nredirect_status = 304\n"), 10, 19,
              "expected 301, 302, 303, 307 or 308");
  ExpectError(PoolWith("", route + "redirect = \"/a\"\nredirect_status = 200\n"), 10, 19,
              "redirect_status");
  ExpectError(PoolWith("", route + "pool = \"app\"\nredirect_status = 301\n"), 10, 1,
              "set only with redirect");
}

}  // namespace
}  // namespace torii::conf

namespace torii::conf {
namespace {

std::string WithLimit(std::string_view limit, std::string_view route_extra = "") {
  return std::string(kPoolHead) + "[[route]]\npool = \"app\"\nrate_limit = \"per_ip\"\n" +
         std::string(route_extra) + "[rate_limit.per_ip]\n" + std::string(limit);
}

TEST(LoadRateLimits, TablesKeysAndModes) {
  Config c = LoadOk(WithLimit("rate = \"100/s\"\nburst = 50\n"));
  ASSERT_EQ(c.rate_limits.size(), 1u);
  const RateLimitConfig& r = c.rate_limits[0];
  EXPECT_EQ(r.name, "per_ip");
  EXPECT_EQ(r.key, RateLimitConfig::Key::kClientIp);
  EXPECT_EQ(r.prefix_v4, 32);
  EXPECT_EQ(r.prefix_v6, 128);
  EXPECT_EQ(r.rate_count, 100u);
  EXPECT_EQ(r.rate_period, std::chrono::seconds(1));
  EXPECT_EQ(r.burst, 50u);
  EXPECT_FALSE(r.delay);
  EXPECT_EQ(r.ban_after, 0u);
  EXPECT_EQ(c.routes[0].rate_limit, "per_ip");
  EXPECT_EQ(c.routes[0].rate_limit_index, 0u);

  c = LoadOk(WithLimit("key = \"client_ip/24\"\nrate = \"6000/m\"\nburst = 5\nmode = \"delay\"\n"
                       "ban_after = 3\nban_window = \"30s\"\nban_for = \"1h\"\nmax_keys = 1000\n"));
  EXPECT_EQ(c.rate_limits[0].prefix_v4, 24);
  EXPECT_EQ(c.rate_limits[0].prefix_v6, 56);
  EXPECT_EQ(c.rate_limits[0].rate_count, 6000u);
  EXPECT_EQ(c.rate_limits[0].rate_period, std::chrono::minutes(1));
  EXPECT_TRUE(c.rate_limits[0].delay);
  EXPECT_EQ(c.rate_limits[0].ban_after, 3u);
  EXPECT_EQ(c.rate_limits[0].ban_window, std::chrono::seconds(30));
  EXPECT_EQ(c.rate_limits[0].ban_for, std::chrono::hours(1));
  EXPECT_EQ(c.rate_limits[0].max_keys, 1000u);
  c = LoadOk(WithLimit("key = \"client_ip/16/48\"\nrate = \"10/h\"\n"));
  EXPECT_EQ(c.rate_limits[0].prefix_v4, 16);
  EXPECT_EQ(c.rate_limits[0].prefix_v6, 48);
  c = LoadOk(WithLimit("key = \"header:X-Api-Key\"\nrate = \"1/d\"\n"));
  EXPECT_EQ(c.rate_limits[0].key, RateLimitConfig::Key::kHeader);
  EXPECT_EQ(c.rate_limits[0].header, "x-api-key");
  EXPECT_EQ(c.rate_limits[0].rate_period, std::chrono::hours(24));
  c = LoadOk(WithLimit("key = \"route\"\nrate = \"5/s\"\n"));
  EXPECT_EQ(c.rate_limits[0].key, RateLimitConfig::Key::kRoute);
}

TEST(LoadRateLimits, Errors) {
  ExpectError(WithLimit("burst = 5\n"), 10, 1, "missing required key \"rate\"");
  ExpectError(WithLimit("rate = \"100/ms\"\n"), 11, 8, "expected COUNT/UNIT");
  ExpectError(WithLimit("rate = \"0/s\"\n"), 11, 8, "expected COUNT/UNIT");
  ExpectError(WithLimit("rate = \"fast\"\n"), 11, 8, "got \"fast\"");
  ExpectError(WithLimit("rate = 100\n"), 11, 8, "expected a string");
  ExpectError(WithLimit("rate = \"1/s\"\nkey = \"client_ip/33\"\n"), 12, 7, "client_ip/PREFIX");
  ExpectError(WithLimit("rate = \"1/s\"\nkey = \"client_ip/24/129\"\n"), 12, 7, "client_ip/PREFIX");
  ExpectError(WithLimit("rate = \"1/s\"\nkey = \"header:\"\n"), 12, 7, "header:NAME");
  ExpectError(WithLimit("rate = \"1/s\"\nkey = \"cookie:x\"\n"), 12, 7, "got \"cookie:x\"");
  ExpectError(WithLimit("rate = \"1/s\"\nmode = \"delay\"\n"), 12, 8, "delay mode needs a burst");
  ExpectError(WithLimit("rate = \"1/s\"\nmode = \"queue\"\n"), 12, 8,
              "expected one of \"reject\", \"delay\"");
  ExpectError(WithLimit("rate = \"1/s\"\nbrust = 1\n"), 12, 1, "did you mean \"burst\"?");
  // A route naming a table that does not exist.
  ExpectError(std::string(kPoolHead) + "[[route]]\npool = \"app\"\nrate_limit = \"nope\"\n", 9, 14,
              "no [rate_limit.nope] table is defined");
  ExpectError(std::string(kPoolHead) + "[[route]]\npool = \"app\"\n[rate_limit]\nx = 1\n", 10, 1,
              "expected [rate_limit.x] to be a table");
}

std::string WithCache(std::string_view keys, std::string_view route_extra = "") {
  return std::string(kPoolHead) + "[[route]]\npool = \"app\"\ncache = \"main\"\n" +
         std::string(route_extra) + "[cache.main]\n" + std::string(keys);
}

TEST(LoadCaches, KeysAndDefaults) {
  Config c = LoadOk(WithCache(""));
  ASSERT_EQ(c.caches.size(), 1u);
  EXPECT_EQ(c.caches[0].name, "main");
  EXPECT_EQ(c.caches[0].memory, 256ull << 20);
  EXPECT_EQ(c.caches[0].max_object, 8ull << 20);
  EXPECT_EQ(c.caches[0].negative_ttl.count(), 0);
  EXPECT_EQ(c.caches[0].lock_timeout, std::chrono::seconds(5));
  EXPECT_TRUE(c.caches[0].key_query);
  EXPECT_TRUE(c.caches[0].key_headers.empty());
  EXPECT_TRUE(c.caches[0].purge_allow.empty());
  EXPECT_EQ(c.caches[0].targeted, std::vector<std::string>{"cdn-cache-control"});
  EXPECT_EQ(c.routes[0].cache, "main");
  EXPECT_EQ(c.routes[0].cache_index, 0u);

  c = LoadOk(WithCache("memory = \"64MiB\"\nmax_object = \"1MiB\"\nnegative_ttl = \"30s\"\n"
                       "lock_timeout = \"250ms\"\nkey_query = false\n"
                       "key_headers = [\"X-Tenant\"]\npurge_allow = [\"127.0.0.1\", \"::1\"]\n"
                       "targeted = [\"Torii-Cache-Control\", \"CDN-Cache-Control\"]\n"));
  EXPECT_EQ(c.caches[0].memory, 64ull << 20);
  EXPECT_EQ(c.caches[0].max_object, 1ull << 20);
  EXPECT_EQ(c.caches[0].negative_ttl, std::chrono::seconds(30));
  EXPECT_EQ(c.caches[0].lock_timeout, std::chrono::milliseconds(250));
  EXPECT_FALSE(c.caches[0].key_query);
  EXPECT_EQ(c.caches[0].key_headers, std::vector<std::string>{"x-tenant"});
  EXPECT_EQ(c.caches[0].purge_allow, (std::vector<std::string>{"127.0.0.1/32", "::1/128"}));
  EXPECT_EQ(c.caches[0].targeted,
            (std::vector<std::string>{"torii-cache-control", "cdn-cache-control"}));
  EXPECT_TRUE(LoadOk(WithCache("targeted = []\n")).caches[0].targeted.empty());
  EXPECT_EQ(c.caches[0].set_cookie, cache::Options::SetCookie::kStrip);
  EXPECT_EQ(LoadOk(WithCache("set_cookie = \"store\"\n")).caches[0].set_cookie,
            cache::Options::SetCookie::kStore);
  EXPECT_EQ(LoadOk(WithCache("set_cookie = \"bypass\"\n")).caches[0].set_cookie,
            cache::Options::SetCookie::kBypass);
}

TEST(LoadCaches, Errors) {
  ExpectError(WithCache("memory = \"lots\"\n"), 11, 10, "expected a size");
  ExpectError(WithCache("memory = \"512KiB\"\n"), 11, 10, "expected a size from 1MiB");
  ExpectError(WithCache("memory = \"4MiB\"\nmax_object = \"2MiB\"\n"), 12, 14,
              "must be at most a quarter of memory");
  ExpectError(WithCache("key_headers = [\"bad header\"]\n"), 11, 16, "expected a header name");
  ExpectError(WithCache("key_headers = \"x\"\n"), 11, 15, "expected an array of header names");
  ExpectError(WithCache("purge_allow = [\"10.0.0.0/33\"]\n"), 11, 16, "got \"10.0.0.0/33\"");
  ExpectError(WithCache("targeted = [\"Cache-Control\"]\n"), 11, 12, "what targeted fields replace");
  ExpectError(WithCache("targeted = [\"a b\"]\n"), 11, 13, "expected a header name");
  ExpectError(WithCache("set_cookie = \"keep\"\n"), 11, 14, "expected \"strip\", \"bypass\"");
  ExpectError(WithCache("stale = true\n"), 11, 1, "unknown key \"stale\"");
  ExpectError(std::string(kPoolHead) + "[[route]]\npool = \"app\"\ncache = \"nope\"\n", 9, 9,
              "no [cache.nope] table is defined");
  ExpectError(std::string(kPoolHead) + "[[route]]\npool = \"app\"\n[cache]\nx = 1\n", 10, 1,
              "expected [cache.x] to be a table");
}

std::string WithTls(std::string_view tls, std::string_view listener_extra = "") {
  return std::string(R"([[listener]]
name = "https"
address = "127.0.0.1:8443"
)") + std::string(listener_extra) + "tls = " + std::string(tls) + R"(
[[pool]]
name = "app"
backends = [{ address = "127.0.0.1:9001" }]
[[route]]
pool = "app"
)";
}

TEST(LoadTls, ListenerAndPoolOptions) {
  auto config = LoadConfigString(WithTls(R"({ certificates = [{ cert = "a.crt", key = "/k/a.key" }, { cert = "b.crt", key = "b.key" }], alpn = ["http/1.1"], min_version = "1.2", ciphersuites = "TLS_AES_128_GCM_SHA256", handshake_timeout = "3s", session_tickets = false, ticket_rotation = "2h", session_ticket_key_file = "keys/t.key" })"),
                                 "/etc/torii/torii.toml");
  ASSERT_TRUE(config.has_value()) << config.error().ToString();
  const auto& tls = config->listeners[0].tls;
  ASSERT_TRUE(tls.has_value());
  ASSERT_EQ(tls->certificates.size(), 2u);
  // Relative paths are taken from the config file's directory.
  EXPECT_EQ(tls->certificates[0].cert, "/etc/torii/a.crt");
  EXPECT_EQ(tls->certificates[0].key, "/k/a.key");
  EXPECT_EQ(tls->certificates[1].key, "/etc/torii/b.key");
  EXPECT_EQ(tls->min_version, "1.2");
  EXPECT_EQ(tls->ciphersuites, "TLS_AES_128_GCM_SHA256");
  EXPECT_EQ(tls->handshake_timeout_ms, 3000u);
  EXPECT_FALSE(tls->session_tickets);
  EXPECT_EQ(tls->ticket_rotation_s, 7200u);
  EXPECT_EQ(tls->session_ticket_key_file, "/etc/torii/keys/t.key");

  Config c = LoadOk(WithTls(R"({ certificates = [{ cert = "a.crt", key = "a.key" }] })"));
  EXPECT_EQ(c.listeners[0].tls->min_version, "1.3");
  EXPECT_EQ(c.listeners[0].tls->alpn, std::vector<std::string>{"http/1.1"});
  EXPECT_EQ(c.listeners[0].tls->ticket_rotation_s, 3600u);
  EXPECT_FALSE(c.pools[0].tls.has_value());

  c = LoadOk(std::string(kPoolHead).replace(std::string(kPoolHead).find("backends"), 0,
                                            "tls = { verify = false, ca = \"ca.pem\", sni = "
                                            "\"api.internal\" }\n") +
             "[[route]]\npool = \"app\"\n");
  ASSERT_TRUE(c.pools[0].tls.has_value());
  EXPECT_FALSE(c.pools[0].tls->verify);
  EXPECT_EQ(c.pools[0].tls->ca, "ca.pem");
  EXPECT_EQ(c.pools[0].tls->sni, "api.internal");
}

TEST(LoadTls, Errors) {
  ExpectError(WithTls("{ alpn = [\"http/1.1\"] }"), 4, 7, "missing required key \"certificates\"");
  ExpectError(WithTls("{ certificates = [] }"), 4, 24, "expected an array of { cert");
  ExpectError(WithTls("{ certificates = [{ cert = \"a\" }] }"), 4, 25,
              "missing required key \"key\"");
  ExpectError(WithTls("{ certificates = [{ cert = \"a\", key = \"b\" }], alpn = [\"h3\"] }"), 4, 61,
              "expected \"h2\" or \"http/1.1\"");
  ExpectError(
      WithTls("{ certificates = [{ cert = \"a\", key = \"b\" }], alpn = [\"h2\", \"h2\"] }"), 4, 67,
      "\"h2\" is listed twice");
  ExpectError(
      WithTls("{ certificates = [{ cert = \"a\", key = \"b\" }], min_version = \"1.1\" }"), 4,
      67, "expected one of \"1.3\", \"1.2\"");
  ExpectError(
      WithTls("{ certificates = [{ cert = \"a\", key = \"b\" }], ticket_rotation = \"10s\" }"),
      4, 71, "at least 60s");
  ExpectError(WithTls("{ certificates = [{ cert = \"a\", key = \"b\" }], ocsp = true }"), 4, 53,
              "unknown key \"ocsp\"");
  ExpectError(
      WithTls("{ certificates = [{ cert = \"a\", key = \"b\" }] }", "http_to_https = true\n"), 4,
      17, "a TLS listener cannot redirect to itself");
  ExpectError(WithTls("{ certificates = [{ cert = \"a\", key = \"b\" }] }", "h2c = true\n"), 4, 7,
              "h2c is HTTP/2 without TLS");
}

// record_size: "dynamic" (the default, 0) or a size from 512 bytes to 16 KiB.
TEST(LoadTls, RecordSize) {
  const std::string certs = R"({ certificates = [{ cert = "a", key = "b" }])";
  EXPECT_EQ(LoadOk(WithTls(certs + " }")).listeners[0].tls->record_size, 0u);
  EXPECT_EQ(LoadOk(WithTls(certs + R"(, record_size = "dynamic" })")).listeners[0].tls->record_size,
            0u);
  EXPECT_EQ(LoadOk(WithTls(certs + R"(, record_size = "4KiB" })")).listeners[0].tls->record_size,
            4096u);
  EXPECT_EQ(LoadOk(WithTls(certs + ", record_size = 1400 }")).listeners[0].tls->record_size, 1400u);
  ExpectError(WithTls(certs + ", record_size = 100 }"), 4, 67,
              "expected a size from 512B to 16KiB, got 100");
  ExpectError(WithTls(certs + R"(, record_size = "32KiB" })"), 4, 67,
              "expected a size from 512B to 16KiB");
  ExpectError(WithTls(certs + R"(, record_size = "small" })"), 4, 67,
              "expected \"dynamic\" or a size such as \"4KiB\", got \"small\"");
}

// session_ticket_keys = "redis": the keys are shared under the listener's name.
TEST(LoadTls, TicketKeysSharedThroughRedis) {
  const std::string redis = "[redis]\naddress = \"127.0.0.1:6379\"\n";
  Config c = LoadOk(
      redis +
      WithTls(R"({ certificates = [{ cert = "a", key = "b" }], session_ticket_keys = "redis" })"));
  EXPECT_EQ(c.listeners[0].tls->shared_ticket_keys, "https");
  c = LoadOk(
      redis +
      WithTls(R"({ certificates = [{ cert = "a", key = "b" }], session_ticket_keys = "local" })"));
  EXPECT_EQ(c.listeners[0].tls->shared_ticket_keys, "");
  ExpectError(
      WithTls(R"({ certificates = [{ cert = "a", key = "b" }], session_ticket_keys = "redis" })"),
      4, 75, "\"redis\" needs a [redis] table");
  ExpectError(
      redis +
          WithTls(
              R"({ certificates = [{ cert = "a", key = "b" }], session_ticket_keys = "redis", session_ticket_key_file = "k" })"),
      6, 75, "not both");
  ExpectError(
      redis +
          WithTls(
              R"({ certificates = [{ cert = "a", key = "b" }], session_ticket_keys = "redis", ticket_rotation = "0s" })"),
      6, 75, "ticket_rotation other than");
  ExpectError(
      redis +
          WithTls(
              R"({ certificates = [{ cert = "a", key = "b" }], session_ticket_keys = "fleet" })"),
      6, 75, "expected one of \"local\", \"redis\"");
}

TEST(LoadAccess, ListsAndConnectionLimits) {
  Config c = LoadOk(std::string(R"([server]
trusted_proxies = ["10.0.0.0/8", "::1"]
[[listener]]
name = "http"
address = "127.0.0.1:8080"
allow = ["127.0.0.0/8", "2001:db8::/32"]
deny = ["127.0.0.66"]
max_conns_per_ip = 10
max_conns = 1000
[[pool]]
name = "app"
backends = [{ address = "127.0.0.1:9001" }]
[[route]]
pool = "app"
deny = ["192.168.0.0/16"]
allow = ["0.0.0.0/0", "::/0"]
)"));
  EXPECT_EQ(c.server.trusted_proxies, (std::vector<std::string>{"10.0.0.0/8", "::1/128"}));
  EXPECT_EQ(c.listeners[0].allow, (std::vector<std::string>{"127.0.0.0/8", "2001:db8::/32"}));
  EXPECT_EQ(c.listeners[0].deny, (std::vector<std::string>{"127.0.0.66/32"}));
  EXPECT_EQ(c.listeners[0].max_conns_per_ip, 10u);
  EXPECT_EQ(c.listeners[0].max_conns, 1000u);
  EXPECT_EQ(c.routes[0].deny, (std::vector<std::string>{"192.168.0.0/16"}));
  EXPECT_EQ(c.routes[0].allow, (std::vector<std::string>{"0.0.0.0/0", "::/0"}));

  ExpectError(PoolWith("", "[[route]]\npool = \"app\"\ndeny = [\"10.0.0.1/8\"]\n"), 9, 9,
              "bits set below the /8 prefix");
  ExpectError(PoolWith("", "[[route]]\npool = \"app\"\nallow = \"10.0.0.0/8\"\n"), 9, 9,
              "expected an array of CIDR strings");
  ExpectError("[server]\ntrusted_proxies = [\"proxy.local\"]\n" + PoolWith(""), 2, 20,
              "expected a CIDR");
}

}  // namespace
}  // namespace torii::conf

namespace torii::conf {
namespace {

TEST(LoadCompression, KeysDefaultsAndErrors) {
  Config c = LoadOk(PoolWith("", "[[route]]\npool = \"app\"\ncompress = true\n"));
  EXPECT_TRUE(c.routes[0].compress);
  EXPECT_EQ(c.compression.algorithms, (std::vector<std::string>{"br", "zstd", "gzip"}));
  EXPECT_EQ(c.compression.min_bytes, 256u);
  EXPECT_TRUE(c.compression.types.empty());
  EXPECT_FALSE(c.compression.decompress);
  c = LoadOk(PoolWith("", "[[route]]\npool = \"app\"\n[compression]\nalgorithms = [\"gzip\"]\n"
                          "min_bytes = \"1KiB\"\ntypes = [\"text/*\", \"Application/JSON\"]\n"
                          "gzip_level = 9\nbr_level = 11\nzstd_level = 19\ndecompress = true\n"));
  EXPECT_EQ(c.compression.algorithms, (std::vector<std::string>{"gzip"}));
  EXPECT_EQ(c.compression.min_bytes, 1024u);
  EXPECT_EQ(c.compression.types, (std::vector<std::string>{"text/*", "application/json"}));
  EXPECT_EQ(c.compression.gzip_level, 9);
  EXPECT_EQ(c.compression.br_level, 11);
  EXPECT_EQ(c.compression.zstd_level, 19);
  EXPECT_TRUE(c.compression.decompress);

  const std::string base = PoolWith("", "[[route]]\npool = \"app\"\n") + "[compression]\n";
  ExpectError(base + "algorithms = [\"deflate\"]\n", 10, 15, "expected \"br\", \"zstd\" or \"gzip\"");
  ExpectError(base + "algorithms = [\"br\", \"br\"]\n", 10, 21, "listed twice");
  ExpectError(base + "algorithms = []\n", 10, 14, "an empty array");
  ExpectError(base + "gzip_level = 10\n", 10, 14, "gzip_level");
  ExpectError(base + "types = [\"*/json\"]\n", 10, 10, "expected a media type");
  ExpectError(base + "types = [\"text\"]\n", 10, 10, "expected a media type");
  ExpectError(base + "level = 3\n", 10, 1, "unknown key \"level\"");
}

// Backends found by DNS: names with resolve = true, SRV discovery, and [dns].
TEST(LoadConfig, BackendsByNameAndDns) {
  Config c = LoadOk(R"([[listener]]
name = "http"
address = "127.0.0.1:8080"

[dns]
servers = ["127.0.0.1:5353", "[::1]:53"]
timeout = "500ms"
attempts = 3
min_ttl = "2s"
max_ttl = "10m"
resolve_at_start = false

[[pool]]
name = "app"
backends = [{ address = "App.Internal.:8080", resolve = true, weight = 3 },
            { address = "10.0.0.1:9000", resolve = true }]

[[pool]]
name = "srv"
discover = { srv = "_http._tcp.app.internal" }

[[route]]
pool = "app"
)");
  ASSERT_EQ(c.pools.size(), 2u);
  EXPECT_EQ(c.pools[0].backends[0].host, "app.internal");
  EXPECT_EQ(c.pools[0].backends[0].port, 8080);
  EXPECT_EQ(c.pools[0].backends[0].weight, 3u);
  EXPECT_EQ(c.pools[0].backends[0].Label(), "app.internal:8080");
  EXPECT_TRUE(c.pools[0].backends[1].host.empty());  // numeric: listed as is
  EXPECT_EQ(c.pools[0].backends[1].address.ToString(), "10.0.0.1:9000");
  EXPECT_TRUE(c.pools[0].dynamic());
  EXPECT_TRUE(c.pools[1].backends.empty());
  EXPECT_EQ(c.pools[1].discover_srv, "_http._tcp.app.internal");
  EXPECT_TRUE(c.pools[1].dynamic());
  EXPECT_EQ(c.dns.servers, (std::vector<std::string>{"127.0.0.1:5353", "[::1]:53"}));
  EXPECT_EQ(c.dns.timeout, std::chrono::milliseconds(500));
  EXPECT_EQ(c.dns.attempts, 3u);
  EXPECT_EQ(c.dns.min_ttl, seconds(2));
  EXPECT_EQ(c.dns.max_ttl, seconds(600));
  EXPECT_FALSE(c.dns.resolve_at_start);
  const Config d = LoadOk(kBase);
  EXPECT_FALSE(d.pools[0].dynamic());
  EXPECT_TRUE(d.dns.resolve_at_start);
  EXPECT_EQ(d.dns.min_ttl, seconds(1));
}

TEST(LoadConfig, BadDnsBackendsAreRefused) {
  const std::string head =
      "[[listener]]\nname = \"http\"\naddress = \"127.0.0.1:8080\"\n"
      "[[route]]\npool = \"app\"\n[[pool]]\nname = \"app\"\n";
  ExpectError(head + "backends = [{ address = \"app.internal:8080\" }]\n", 8, 25,
              "add resolve = true");
  ExpectError(head + "backends = [{ address = \"app.internal\", resolve = true }]\n", 8, 25,
              "missing \":port\"");
  ExpectError(head + "backends = [{ address = \"app..internal:80\", resolve = true }]\n", 8, 25,
              "empty label");
  ExpectError(head + "backends = [{ address = \"a b:80\", resolve = true }]\n", 8, 25,
              "invalid character");
  ExpectError(head + "backends = [{ address = \"app:0\", resolve = true }]\n", 8, 25,
              "port must be");
  ExpectError(
      head + "backends = [{ address = \"" + std::string(64, 'a') + ".x:80\", resolve = true }]\n",
      8, 25, "longer than 63");
  ExpectError(head +
                  "backends = [{ address = \"a.test:80\", resolve = true },"
                  " { address = \"A.test:80\", resolve = true }]\n",
              8, 68, "listed twice");
  ExpectError(head + "discover = { srv = \"_http._tcp.x:80\" }\n", 8, 20, "no port");
  ExpectError(head + "discover = { srv = \"\" }\n", 8, 20, "SRV name");
  ExpectError(head + "discover = { service = \"x\" }\n", 8, 14, "unknown key");
  ExpectError(head + "backends = []\n", 8, 12, "non-empty array");
  ExpectError(head + "algorithm = \"round_robin\"\n", 6, 1, "backends");
  ExpectError(head +
                  "algorithm = \"ip_hash\"\nslow_start = \"10s\"\n"
                  "backends = [{ address = \"10.0.0.1:80\" }]\n",
              9, 14, "cannot ramp");
  EXPECT_EQ(LoadOk(head + "slow_start = \"10s\"\nbackends = [{ address = \"10.0.0.1:80\" }]\n")
                .pools[0]
                .slow_start,
            seconds(10));
  ExpectError(WithBase("[dns]\nservers = [\"dns.example:53\"]\n"), 2, 12, "numeric address");
  ExpectError(WithBase("[dns]\nservers = []\n"), 2, 11, "non-empty array");
  ExpectError(WithBase("[dns]\nmin_ttl = \"1m\"\nmax_ttl = \"30s\"\n"), 3, 11,
              "must not be shorter than min_ttl");
  ExpectError(WithBase("[dns]\nattempts = 0\n"), 2, 12, "expected an integer");
  ExpectError(WithBase("[dns]\ntimeout = \"0s\"\n"), 2, 11, "greater than zero");
}

// Fleet-wide limits: [redis] and store = "redis".
TEST(LoadConfig, RedisStoreForRateLimits) {
  Config c = LoadOk(WithBase(R"([redis]
address = "127.0.0.1:6379"
timeout = "20ms"
pool_size = 4

[rate_limit.fleet]
rate = "100/s"
store = "redis"
sync_interval = "250ms"
on_store_error = "deny"

[rate_limit.alone]
rate = "5/s"
)"));
  EXPECT_TRUE(c.redis.enabled);
  EXPECT_EQ(c.redis.address.ToString(), "127.0.0.1:6379");
  EXPECT_EQ(c.redis.timeout, std::chrono::milliseconds(20));
  EXPECT_EQ(c.redis.pool_size, 4u);
  ASSERT_EQ(c.rate_limits.size(), 2u);
  EXPECT_TRUE(c.rate_limits[0].redis);
  EXPECT_EQ(c.rate_limits[0].sync_interval, std::chrono::milliseconds(250));
  EXPECT_EQ(c.rate_limits[0].on_store_error, RateLimitConfig::OnStoreError::kDeny);
  EXPECT_FALSE(c.rate_limits[1].redis);
  EXPECT_EQ(c.rate_limits[1].on_store_error, RateLimitConfig::OnStoreError::kLocal);
  EXPECT_FALSE(LoadOk(kBase).redis.enabled);
  EXPECT_EQ(LoadOk(WithBase("[redis]\naddress = \"127.0.0.1:6379\"\n")).redis.pool_size, 1u);
}

TEST(LoadConfig, BadRedisSettingsAreRefused) {
  ExpectError(WithBase("[redis]\naddress = \"127.0.0.1:6379\"\npool_size = 0\n"), 3, 13,
              "expected an integer from 1 to 16, got 0");
  ExpectError(WithBase("[redis]\naddress = \"127.0.0.1:6379\"\npool_size = 17\n"), 3, 13,
              "expected an integer from 1 to 16, got 17");
  ExpectError(WithBase("[rate_limit.f]\nrate = \"1/s\"\nstore = \"redis\"\n"), 3, 9,
              "needs a [redis] table");
  ExpectError(WithBase("[redis]\naddress = \"127.0.0.1:6379\"\n[rate_limit.f]\nrate = \"1/s\"\n"
                       "burst = 2\nmode = \"delay\"\nstore = \"redis\"\n"),
              6, 8, "cannot be shared through Redis");
  ExpectError(WithBase("[rate_limit.f]\nrate = \"1/s\"\non_store_error = \"allow\"\n"), 3, 18,
              "only a store = \"redis\" limit");
  ExpectError(WithBase("[redis]\naddress = \"127.0.0.1:6379\"\n[rate_limit.f]\nrate = \"1/s\"\n"
                       "store = \"redis\"\non_store_error = \"maybe\"\n"),
              6, 18, "expected one of");
  ExpectError(WithBase("[redis]\naddress = \"127.0.0.1:6379\"\n[rate_limit.f]\n"
                       "rate = \"2000000/s\"\nstore = \"redis\"\n"),
              4, 8, "at most 1000000/s");
  ExpectError(WithBase("[redis]\naddress = \"redis.internal:6379\"\n"), 2, 11, "numeric");
  ExpectError(WithBase("[redis]\ntimeout = \"1s\"\n"), 1, 1, "missing required key");
  ExpectError(WithBase("[redis]\naddress = \"127.0.0.1:6379\"\npool = 3\n"), 3, 1, "unknown key");
}

}  // namespace
}  // namespace torii::conf
