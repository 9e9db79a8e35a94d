// app/server.h: wiring a validated Config into listeners, workers and proxy sessions.
//
// The Server owns the listening sockets (until handed to workers), one core::Worker and one
// http::ProxyContext per worker thread, and the shared ProxyConfig. Run() blocks the calling
// thread on signals: SIGTERM/SIGINT stop gracefully (stop accepting, finish in-flight
// requests within shutdown_grace, exit 0); SIGHUP is acknowledged with a log line (hot reload
// is issue #9); SIGUSR1 reopens the log files; SIGPIPE is ignored.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include <expected>
#include <vector>

#include "conf/config.h"
#include "tls/client_context.h"
#include "tls/server_context.h"

namespace torii::app {

// The TLS contexts a config needs, built (certificates and keys read and checked, CA files
// loaded) once at start-up and by `torii -t`: by listener index and by pool index, null where
// there is no TLS.
struct TlsContexts {
  std::vector<std::shared_ptr<const tls::ServerContext>> listeners;
  std::vector<std::shared_ptr<const tls::ClientContext>> pools;
};
// The first problem found, naming the listener or pool and the file. With `previous` (a
// reload), a listener of the same name keeps its ticket keys (when its ticket settings are
// unchanged: tickets issued before the reload still resume) and its handshake counters.
std::expected<TlsContexts, std::string> BuildTls(const conf::Config& config,
                                                 const conf::Config* previous = nullptr,
                                                 const TlsContexts* previous_contexts = nullptr);

// Reopens a log file in place (SIGUSR1); false when it could not (the old one stays).
using ReopenFn = std::function<bool()>;

// Builds everything, binds every listener, writes the ready file, serves until a stop
// signal. Returns the process exit code. SIGUSR1 reopens the access log (when it is a file)
// and calls `reopen_error_log` (when set) for logrotate.
int RunServer(const conf::Config& config, const ReopenFn& reopen_error_log = {});

}  // namespace torii::app
