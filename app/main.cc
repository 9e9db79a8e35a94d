// app/main.cc: the torii command line.
//
//   torii -c FILE        serve with FILE
//   torii -t -c FILE     check FILE and exit 0 (valid) or 1 (invalid), like `nginx -t`
//   torii --version | --help
#include <cstdio>
#include <cstring>
#include <string>

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/dist_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "app/generation.h"
#include "app/server.h"
#include "conf/load.h"

#ifndef TORII_VERSION
#define TORII_VERSION "0.0.0"
#endif

namespace {

void Usage(FILE* out) {
  std::fprintf(out,
               "usage: torii [-t] -c FILE\n"
               "       torii --version | --help\n"
               "\n"
               "  -c, --config FILE  configuration file (TOML)\n"
               "  -t, --test         check the configuration and exit (0 = valid)\n"
               "  -v, --version      print the version\n"
               "  -h, --help         print this help\n"
               "\n"
               "Signals: SIGTERM/SIGINT stop gracefully.\n");
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_path;
  bool test_only = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "-c" || arg == "--config") {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "torii: %s needs a file\n", arg.c_str());
        return 2;
      }
      config_path = argv[++i];
    } else if (arg.starts_with("--config=")) {
      config_path = arg.substr(9);
    } else if (arg == "-t" || arg == "--test") {
      test_only = true;
    } else if (arg == "-v" || arg == "--version") {
      std::printf("torii %s\n", TORII_VERSION);
      return 0;
    } else if (arg == "-h" || arg == "--help") {
      Usage(stdout);
      return 0;
    } else {
      std::fprintf(stderr, "torii: unknown argument '%s'\n", arg.c_str());
      Usage(stderr);
      return 2;
    }
  }
  if (config_path.empty()) {
    std::fprintf(stderr, "torii: no configuration file (use -c FILE)\n");
    Usage(stderr);
    return 2;
  }

  auto config = torii::conf::LoadConfigFile(config_path);
  if (!config) {
    std::fprintf(stderr, "torii: %s\n", config.error().ToString().c_str());
    if (test_only) {
      std::fprintf(stderr, "torii: configuration file %s test failed\n", config_path.c_str());
    }
    return 1;
  }
  if (test_only) {
    // Certificates, keys and CA files are part of the config: read and check them too.
    if (auto tls = torii::app::BuildTls(*config); !tls) {
      std::fprintf(stderr, "torii: %s: %s\n", config_path.c_str(), tls.error().c_str());
      std::fprintf(stderr, "torii: configuration file %s test failed\n", config_path.c_str());
      return 1;
    }
    std::printf("torii: configuration file %s test is successful\n", config_path.c_str());
    return 0;
  }

  // The error log: stderr or a file, at the configured level. A file sits behind a
  // distribution sink so that SIGUSR1 can swap in a freshly opened one while workers log
  // (logrotate's "move, then signal").
  std::shared_ptr<spdlog::logger> logger;
  std::shared_ptr<spdlog::sinks::dist_sink_mt> file_sinks;
  if (config->server.error_log == "-") {
    logger = std::make_shared<spdlog::logger>(
        "torii", std::make_shared<spdlog::sinks::stderr_sink_mt>());
  } else {
    try {
      file_sinks = std::make_shared<spdlog::sinks::dist_sink_mt>();
      file_sinks->add_sink(
          std::make_shared<spdlog::sinks::basic_file_sink_mt>(config->server.error_log));
      logger = std::make_shared<spdlog::logger>("torii", file_sinks);
    } catch (const spdlog::spdlog_ex& e) {
      std::fprintf(stderr, "torii: error_log %s: %s\n", config->server.error_log.c_str(),
                   e.what());
      return 1;
    }
  }
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e [%l] %v");
  logger->set_level(spdlog::level::from_str(config->server.log_level));
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
  torii::app::ReopenFn reopen_error_log;
  if (file_sinks) {
    reopen_error_log = [&config, file_sinks, logger]() -> bool {
      try {
        auto fresh = std::make_shared<spdlog::sinks::basic_file_sink_mt>(config->server.error_log);
        fresh->set_pattern("%Y-%m-%dT%H:%M:%S.%e [%l] %v");
        file_sinks->set_sinks({fresh});
        return true;
      } catch (const spdlog::spdlog_ex& e) {
        spdlog::error("SIGUSR1: cannot reopen error_log {}: {} (still writing the old file)",
                      config->server.error_log, e.what());
        return false;
      }
    };
  }
  return torii::app::RunServer(*config, reopen_error_log);
}
