// app/server.h: wiring a validated Config into listeners, workers and proxy sessions.
//
// RunServer binds the listening sockets (handed to the workers), makes one core::Worker and
// one http::ProxyContext per worker thread and the admin endpoint, builds the first generation
// (reloader.h), gives up root, and blocks the calling thread on signals: SIGTERM/SIGINT stop
// gracefully (stop accepting, finish in-flight requests within shutdown_grace, exit 0); SIGHUP
// reloads the config file (checked off the workers, then swapped in; a file that fails, or
// changes what needs a restart, is refused with a log line and the old config keeps serving);
// SIGUSR1 reopens the log files; SIGPIPE is ignored.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "conf/config.h"

namespace torii::app {

// Reopens a log file in place (SIGUSR1); false when it could not (the old one stays).
using ReopenFn = std::function<bool()>;

// Builds everything, binds every listener, writes the ready file, serves until a stop
// signal. Returns the process exit code. SIGUSR1 reopens the access log (when it is a file)
// and calls `reopen_error_log` (when set) for logrotate.
int RunServer(const conf::Config& config, const ReopenFn& reopen_error_log = {});

}  // namespace torii::app
