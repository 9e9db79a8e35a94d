// core/op_tag.h: what travels in an io_uring user_data.
//
// A value, never a pointer (liburing examples/proxy.c; HAProxy's generation-tagged events):
// the connection slot, the slot's 24-bit generation at submit time and the operation. A
// completion whose generation no longer matches its slot belongs to a connection that is
// gone and is dropped by Worker::Dispatch.
#pragma once

#include <cstdint>

namespace torii::core {

enum class Op : uint8_t {
  kAccept,      // multishot accept on a listener (slot = listener index)
  kRecv,        // multishot recv from the provided buffer ring
  kSend,        // sendmsg from the connection's OutQueue
  kConnect,     // outbound connect
  kSynAck,      // POLLOUT after a fast-open connect: the peer answered the SYN (or refused)
  kCancel,      // cancel of every operation on a closing connection's fd
  kRecvCancel,  // cancel of just the multishot recv (receive paused for backpressure)
  kShutdown,    // shutdown(SHUT_WR) before a lingering close
  kClose,       // close(fd): the last operation of a slot's life
  kWake,        // eventfd read: another thread asked this worker to look at its mailbox
  kPoll,        // readiness of a watched descriptor (slot = watch id, gen = its generation)
  kPollRemove,  // removal of a watch's poll (its completion carries nothing)
  kFile,        // a read or write of a file (slot = the file operation's index)
};

struct OpTag {
  uint32_t slot = 0;
  uint32_t gen = 0;  // 24 bits used
  Op op = Op::kAccept;

  static constexpr uint32_t kGenMask = 0xFFFFFF;

  constexpr uint64_t Encode() const {
    return (static_cast<uint64_t>(op) << 56) | (static_cast<uint64_t>(gen & kGenMask) << 32) |
           slot;
  }
  static constexpr OpTag Decode(uint64_t v) {
    return OpTag{static_cast<uint32_t>(v), static_cast<uint32_t>(v >> 32) & kGenMask,
                 static_cast<Op>(v >> 56)};
  }
};

}  // namespace torii::core
