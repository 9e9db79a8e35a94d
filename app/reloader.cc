// app/reloader.cc: see reloader.h.
#include "app/reloader.h"

#include <spdlog/spdlog.h>

#include <utility>
#include <vector>

#include "conf/load.h"

namespace torii::app {

namespace {

// On worker 0, for what works on its ring for one generation (a HealthChecker, an
// OcspFetcher): `previous` takes no more work and stays in `retired` while connections it
// opened may still report to it (busy()); `next`, when it has anything to do, starts.
template <class T, class Start>
void HandOver(const std::shared_ptr<T>& previous, std::vector<std::shared_ptr<T>>& retired, T* next,
              Start start) {
  previous->Stop();
  retired.push_back(previous);
  std::erase_if(retired, [](const std::shared_ptr<T>& t) { return !t->busy(); });
  if (!next->empty()) {
    start(*next);
  }
}

}  // namespace

Reloader::Reloader(const conf::Config& config, uint32_t workers)
    : first_(config), workers_(workers) {}

std::string Reloader::Start() {
  auto tls = BuildTls(first_);
  if (!tls) {
    return tls.error();
  }
  tls_ = std::move(*tls);
  discoveries_.push_back(std::make_unique<Discovery>(first_));
  discovery_ = discoveries_.back().get();
  if (!discovery_->empty()) {
    if (std::string why = discovery_->ResolveNow(); !why.empty()) {
      return why;
    }
  }
  std::shared_ptr<http::ProxyConfig> proxy = BuildProxyConfig(first_, tls_, workers_, *discovery_);
  if (std::string why = OpenDiskTiers(proxy.get(), nullptr); !why.empty()) {
    return why;
  }
  proxy_config_ = std::move(proxy);
  checker_ = std::make_shared<HealthChecker>(first_, *proxy_config_);
  ocsp_ = std::make_shared<OcspFetcher>(*proxy_config_);
  ticket_keys_ = TicketKeysOf(*proxy_config_);
  return {};
}

void Reloader::Attach(std::vector<http::ProxyContext*> contexts, Admin* admin) {
  contexts_ = std::move(contexts);
  admin_ = admin;
}

bool Reloader::ReloadFile() {
  const conf::Config& current = running();
  auto refuse = [](const std::string& why) {
    spdlog::error("SIGHUP: reload refused, still serving the previous configuration: {}", why);
    return false;
  };
  auto fresh = conf::LoadConfigFile(current.source);
  if (!fresh) {
    return refuse(fresh.error().ToString());
  }
  if (std::string why = ReloadBlocker(current, *fresh); !why.empty()) {
    return refuse(current.source + ": " + why + " (that needs a restart)");
  }
  auto tls = BuildTls(*fresh, &current, &tls_);
  if (!tls) {
    return refuse(current.source + ": " + tls.error());
  }
  auto next_discovery = std::make_unique<Discovery>(*fresh);
  if (!next_discovery->empty()) {
    if (std::string why = next_discovery->ResolveNow(); !why.empty()) {
      return refuse(why);
    }
  }
  std::shared_ptr<http::ProxyConfig> next =
      BuildProxyConfig(*fresh, *tls, workers_, *next_discovery);
  if (std::string why = OpenDiskTiers(next.get(), proxy_config_.get()); !why.empty()) {
    return refuse(why);
  }
  tls_ = std::move(*tls);
  configs_.push_back(std::make_unique<conf::Config>(std::move(*fresh)));
  discoveries_.push_back(std::move(next_discovery));
  Install(std::move(next), *configs_.back(), discoveries_.back().get(), /*reload=*/true);
  spdlog::info(
      "SIGHUP: reloaded {} ({} reload(s)); new requests use it, requests in flight "
      "finish on the previous one",
      configs_.back()->source, configs_.size());
  return true;
}

void Reloader::PollDiscovery() {
  if (discovery_->TakeChanged()) {
    const conf::Config& current = running();
    Install(BuildProxyConfig(current, tls_, workers_, *discovery_), current, discovery_,
            /*reload=*/false);
  }
}

void Reloader::Install(std::shared_ptr<http::ProxyConfig> next, const conf::Config& config,
                       Discovery* next_discovery, bool reload) {
  CarryOver(*proxy_config_, next.get());
  proxy_config_ = std::move(next);
  std::shared_ptr<HealthChecker> previous_checker = std::move(checker_);
  checker_ = std::make_shared<HealthChecker>(config, *proxy_config_);
  Discovery* previous_discovery = discovery_;
  discovery_ = next_discovery;
  std::shared_ptr<OcspFetcher> previous_ocsp;
  if (reload) {
    previous_ocsp = std::move(ocsp_);
    ocsp_ = std::make_shared<OcspFetcher>(*proxy_config_);
  }
  auto keys = TicketKeysOf(*proxy_config_);
  for (http::ProxyContext* ctx : contexts_) {
    ctx->worker().Post([ctx, cfg = proxy_config_] { ctx->Reload(cfg); });
  }
  http::ProxyContext* ctx0 = contexts_[0];
  core::Worker* w0 = &ctx0->worker();
  w0->Post([w0, ctx0, previous_checker, next_checker = checker_.get(), retired = retired_checkers_,
            previous_discovery, next_discovery, reload, admin = admin_, cfg = proxy_config_, keys,
            ticket_keys = ticket_keys_, previous_ocsp, next_ocsp = ocsp_.get(),
            retired_ocsp = retired_ocsp_] {
    if (previous_ocsp != nullptr) {
      HandOver(previous_ocsp, *retired_ocsp, next_ocsp, [w0](OcspFetcher& f) { f.Start(*w0); });
    }
    HandOver(previous_checker, *retired, next_checker,
             [ctx0](HealthChecker& c) { c.Start(*ctx0); });
    if (previous_discovery != next_discovery) {
      previous_discovery->Stop();
      if (!next_discovery->empty()) {
        next_discovery->Start(*w0);
      }
    }
    if (admin != nullptr) {
      admin->SetProxyConfig(cfg);
      admin->SetDiscovery(next_discovery);
      if (reload) {
        admin->CountReload();
      }
    }
    *ticket_keys = *keys;  // worker 0's rotation task reads it on this thread
  });
}

}  // namespace torii::app
