// core/result.h: the error type of the data plane.
//
// No exceptions on the request path (only config loading may throw): functions return
// Result<T>, a std::expected whose error records what went wrong, which side caused it
// (Pingora's ErrorSource) and the errno it came from. Error is trivially copyable so returning
// it costs nothing.
#pragma once

#include <cstdint>
#include <expected>
#include <string_view>

namespace torii::core {

enum class Errc : uint8_t {
  kOk = 0,
  kEof,            // the peer closed its side (FIN)
  kReset,          // ECONNRESET / EPIPE: the peer aborted
  kRefused,        // ECONNREFUSED
  kTimeout,        // one of our timers fired
  kUnreachable,    // EHOSTUNREACH / ENETUNREACH
  kNoMemory,       // ENOMEM / ENOBUFS as a hard error
  kNoFds,          // EMFILE / ENFILE
  kCanceled,       // ECANCELED: we asked for it
  kTooManyConns,   // connection table full
  kProtocol,       // the peer spoke malformed HTTP (or similar)
  kIo,             // any other errno
};

enum class Side : uint8_t { kDownstream, kUpstream, kInternal };

struct Error {
  Errc code = Errc::kIo;
  Side side = Side::kInternal;
  int sys_errno = 0;

  // The one place a negative CQE result or errno becomes an Error.
  static Error FromErrno(int err, Side side);
  static Error FromCqe(int res, Side side) { return FromErrno(-res, side); }
  std::string_view name() const;
};

template <class T>
using Result = std::expected<T, Error>;

inline std::unexpected<Error> Fail(Errc code, Side side, int sys_errno = 0) {
  return std::unexpected(Error{code, side, sys_errno});
}

}  // namespace torii::core
