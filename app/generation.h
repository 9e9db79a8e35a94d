// app/generation.h: a configuration generation, from conf::Config to what the workers run.
//
// Owns: the translation of a validated conf::Config into the data plane's http::ProxyConfig
// (pools with their shared state, rate-limit tables, cache stores, routes, listeners), the TLS
// contexts a config needs, and what a new generation takes over from the one it replaces (hot
// reload and DNS changes). Leaves out: reading the file (conf/), sockets, threads and signals
// (server.cc), and the order of a reload (reloader.h).
#pragma once

#include <expected>
#include <memory>
#include <string>
#include <vector>

#include "app/discovery.h"
#include "conf/config.h"
#include "http/proxy_config.h"
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

// The data plane's view of `config` for `workers` workers, its pools' backends as `discovery`
// has them (listed addresses, and what DNS found). Every shared table is new: CarryOver() hands
// a running generation's state to it.
std::shared_ptr<http::ProxyConfig> BuildProxyConfig(const conf::Config& config,
                                                    const TlsContexts& tls, uint32_t workers,
                                                    const Discovery& discovery);

// Hot reload keeps what must outlive a config version: a pool's health, load and max_conns
// state and TLS sessions when its settings are unchanged, a rate-limit table (and its bans and
// leases) with the same settings, a cache store of the same size (entries survive a reload),
// route counters, every listener's connection counters (listeners do not change on reload), and
// the disk tiers by file.
void CarryOver(const http::ProxyConfig& old, http::ProxyConfig* fresh);

// Gives every cache with a disk tier configured its store: `previous`'s for the same file (a
// reload), else the file opened (start-up, or a reload that adds or moves one). The first
// failure, or empty. The scans of what new files hold run on threads of their own; requests
// miss the disk tier until each is done.
std::string OpenDiskTiers(http::ProxyConfig* proxy, const http::ProxyConfig* previous);

// What a reload cannot change (the sockets and threads are made once): empty when `fresh` may
// replace `old`, else why not.
std::string ReloadBlocker(const conf::Config& old, const conf::Config& fresh);

// The session-ticket key sets of a config's TLS listeners (rotated by worker 0).
std::shared_ptr<std::vector<std::shared_ptr<tls::TicketKeys>>> TicketKeysOf(
    const http::ProxyConfig& proxy);

}  // namespace torii::app
