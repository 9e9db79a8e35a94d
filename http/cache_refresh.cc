#include "http/cache_refresh.h"

#include <utility>

namespace torii::http {

// What a refresh's exchange sees as its client: a reader that takes every byte at once and
// keeps none. The exchange never holds a refresh for a timer (it leads the fill, so it never
// waits for one; it has no body, no early data, and never queues for a slot), so the timer
// calls have nothing to do.
class CacheRefresher::Refresh final : public Downstream {
 public:
  Refresh(CacheRefresher& owner, uint32_t id, ClientConn conn)
      : owner_(owner), id_(id), conn_(std::move(conn)), x_(owner.ctx_, conn_, *this) {}

  Exchange& exchange() { return x_; }

  std::string_view protocol() const override { return "HTTP/1.1"; }
  bool closing() const override { return ended_; }
  size_t queued() const override { return 0; }
  bool WriteBlocked() override { return false; }
  bool WriteInterim(const MessageHead&) override { return false; }
  void WriteContinue() override {}
  int WriteSwitchingProtocols(const MessageHead&, std::string_view) override { return 0; }
  void EndTunnel(bool) override { End(); }
  void WriteHead(const MessageHead&, ResponseBody, bool, bool*, std::string_view,
                 const HeadEdits&) override {}
  void WriteBody(std::string_view, bool) override {}
  bool WriteEnd(std::span<const HeaderView>) override { return false; }
  size_t WriteLocalReply(int, bool, std::string_view, std::string_view body,
                         std::string_view) override {
    return body.size();
  }
  void SetTimer(uint64_t) override {}
  void ClearTimer() override {}
  void PauseReading() override {}
  void ResumeReading() override {}
  void Continue() override {}
  void Finished() override { End(); }
  void CloseAfterFlush() override { End(); }
  void Close() override { End(); }
  void Abort() override { End(); }

 private:
  void End() {
    if (!ended_) {
      ended_ = true;
      owner_.Ended(id_);
    }
  }

  CacheRefresher& owner_;
  const uint32_t id_;
  ClientConn conn_;
  Exchange x_;
  bool ended_ = false;
};

CacheRefresher::CacheRefresher(ProxyContext& ctx) : ctx_(ctx) {}

// The worker has stopped (and may be gone): its connections, the refreshes' upstream ones
// among them, were closed by its drain, so what is left holds nothing of it.
CacheRefresher::~CacheRefresher() = default;

void CacheRefresher::Start(Exchange& from) {
  uint32_t id = ++next_id_;
  while (id == 0 || live_.contains(id)) {
    id = ++next_id_;
  }
  ClientConn conn = from.RefreshClientConn();
  conn.host = this;
  auto r = std::make_unique<Refresh>(*this, id, std::move(conn));
  Exchange& x = r->exchange();
  live_.emplace(id, std::move(r));
  ctx_.stats().cache_refreshes++;
  x.StartRefresh(id, from);
}

Exchange* CacheRefresher::FindExchange(uint32_t id) {
  auto it = live_.find(id);
  return it != live_.end() ? &it->second->exchange() : nullptr;
}

void CacheRefresher::Ended(uint32_t id) {
  ended_.push_back(id);
  if (!reap_created_) {
    reap_task_ = ctx_.worker().AddTask([this] { Reap(); });
    reap_created_ = true;
  }
  ctx_.worker().ArmTask(reap_task_, ctx_.worker().now_ms());
}

void CacheRefresher::Reap() {
  std::vector<uint32_t> ended;
  ended.swap(ended_);
  for (uint32_t id : ended) {
    auto it = live_.find(id);
    if (it == live_.end()) {
      continue;
    }
    std::unique_ptr<Refresh> r = std::move(it->second);
    live_.erase(it);
    r->exchange().OnClosed();  // whatever it still holds (nothing, after a clean end)
  }
}

}  // namespace torii::http
