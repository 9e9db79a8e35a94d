// app/server.h: wiring a validated Config into listeners, workers and proxy sessions.
//
// The Server owns the listening sockets (until handed to workers), one core::Worker and one
// http::ProxyContext per worker thread, and the shared ProxyConfig. Run() blocks the calling
// thread on signals: SIGTERM/SIGINT stop gracefully (stop accepting, finish in-flight
// requests within shutdown_grace, exit 0); SIGHUP is acknowledged with a log line (hot reload
// is issue #9); SIGPIPE is ignored.
#pragma once

#include <memory>
#include <string>

#include "conf/config.h"

namespace torii::app {

// Builds everything, binds every listener, writes the ready file, serves until a stop
// signal. Returns the process exit code.
int RunServer(const conf::Config& config);

}  // namespace torii::app
