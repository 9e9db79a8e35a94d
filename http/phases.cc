// http/phases.cc: see phases.h.
#include "http/phases.h"

#include "base/text.h"

namespace torii::http {

namespace {

void Set(PhaseTimes* p, Phase phase, uint64_t from, uint64_t to) {
  if (from == 0 || to == 0 || to < from) {
    return;
  }
  p->ns[static_cast<size_t>(phase)] = to - from;
  p->present |= 1u << static_cast<int>(phase);
}

// Milliseconds with three decimals ("12.345"), rounded to the microsecond: integer
// arithmetic, as snprintf("%.3f") of a double cost more than the rest of the line.
void AppendMs(uint64_t ns, std::string* out) {
  const uint64_t us = ns / 1000 + (ns % 1000 >= 500 ? 1 : 0);
  base::AppendDecimal(out, us / 1000);
  const uint64_t frac = us % 1000;
  const char digits[4] = {'.', static_cast<char>('0' + frac / 100),
                          static_cast<char>('0' + frac / 10 % 10),
                          static_cast<char>('0' + frac % 10)};
  out->append(digits, 4);
}

}  // namespace

PhaseTimes ComputePhases(const ExchangeTiming& t) {
  PhaseTimes p;
  const auto put = [&p](Phase phase, uint64_t ns) {
    p.ns[static_cast<size_t>(phase)] = ns;
    p.present |= 1u << static_cast<int>(phase);
  };
  if (t.accept_ns != 0) {
    // The TLS handshake is its own phase: what is left is the client's silence.
    put(Phase::kAccept, t.accept_ns > t.tls_ns ? t.accept_ns - t.tls_ns : 0);
  }
  if (t.tls_ns != 0) {
    put(Phase::kTls, t.tls_ns);
  }
  Set(&p, Phase::kHead, t.first_byte, t.head);
  Set(&p, Phase::kAccess, t.head, t.access);
  Set(&p, Phase::kCache, t.access, t.cache);
  const uint64_t before_pick = t.cache != 0 ? t.cache : t.access;
  Set(&p, Phase::kWait, before_pick, t.sent);
  Set(&p, Phase::kConnect, t.sent, t.connected);
  Set(&p, Phase::kBackend, t.connected != 0 ? t.connected : t.sent, t.response);
  Set(&p, Phase::kStream, t.response, t.done);
  if (t.codec_ns != 0) {
    put(Phase::kCompress, t.codec_ns);
  }
  Set(&p, Phase::kTotal, t.first_byte, t.done);
  return p;
}

namespace {

// "name:ms,..." or, with `json`, "\"name\":ms,...", for the phases present.
void AppendPhaseList(const PhaseTimes& p, bool json, std::string* out) {
  bool first = true;
  for (size_t i = 0; i < kPhaseCount; ++i) {
    if (!p.has(static_cast<Phase>(i))) {
      continue;
    }
    if (!first) {
      out->push_back(',');
    }
    first = false;
    if (json) {
      out->push_back('"');
    }
    out->append(kPhaseNames[i]);
    out->append(json ? "\":" : ":");
    AppendMs(p.ns[i], out);
  }
}

}  // namespace

void AppendPhasesText(const PhaseTimes& p, std::string* out) { AppendPhaseList(p, false, out); }

void AppendPhasesJson(const PhaseTimes& p, std::string* out) {
  out->push_back('{');
  AppendPhaseList(p, true, out);
  out->push_back('}');
}

}  // namespace torii::http
