// tests/fuzz/grpc_fuzz.cc: what torii reads of gRPC (http/grpc.h): a client's grpc-timeout and
// content type, a backend's HealthCheckResponse, and the grpc-message it writes itself.
//
// Input: one byte choosing the function, then its argument. The oracles:
//  - ParseGrpcTimeout accepts only 1..8 digits and a unit, and never overflows (its largest
//    value, 99999999 hours, fits);
//  - IsGrpcContentType says yes only to application/grpc, alone or followed by '+' or ';';
//  - GrpcHealthStatus reads only one uncompressed framed message whose length matches;
//  - the status fields torii writes stay two lines of printable ASCII whatever the message.
#include <string>
#include <string_view>

#include "base/text.h"
#include "http/grpc.h"
#include "tests/fuzz/fuzz.h"

namespace torii::fuzz {

namespace {

constexpr const char* kName = "grpc_fuzz";

}  // namespace

int FuzzGrpc(const uint8_t* data, size_t size) {
  Input in(data, size);
  const uint8_t choice = in.Byte() % 4;
  const std::string_view arg = in.Rest();
  switch (choice) {
    case 0: {
      const auto ms = http::ParseGrpcTimeout(arg);
      if (!ms) {
        return 0;
      }
      if (arg.size() < 2 || arg.size() > 9 ||
          std::string_view("HMSmun").find(arg.back()) == std::string_view::npos) {
        Violation(kName, "a grpc-timeout accepted that the grammar refuses", arg);
      }
      if (*ms > 99999999ull * 3600 * 1000) {
        Violation(kName, "a grpc-timeout beyond the largest one", arg);
      }
      return 1;
    }
    case 1: {
      if (!http::IsGrpcContentType(arg)) {
        return 0;
      }
      const std::string_view ct = base::TrimOws(arg);
      if (!base::EqualsIgnoreCase(ct.substr(0, 16), "application/grpc") ||
          (ct.size() > 16 && ct[16] != '+' && ct[16] != ';')) {
        Violation(kName, "not a gRPC content type", arg);
      }
      return 1;
    }
    case 2: {
      const auto status = http::GrpcHealthStatus(arg);
      if (!status) {
        return 0;
      }
      if (arg.size() < 5 || arg[0] != 0) {
        Violation(kName, "a status read from no framed message", arg);
      }
      const size_t n = (static_cast<size_t>(static_cast<uint8_t>(arg[1])) << 24) |
                       (static_cast<size_t>(static_cast<uint8_t>(arg[2])) << 16) |
                       (static_cast<size_t>(static_cast<uint8_t>(arg[3])) << 8) |
                       static_cast<uint8_t>(arg[4]);
      if (n != arg.size() - 5) {
        Violation(kName, "a status read past or short of the message", arg);
      }
      return 1;
    }
    default: {
      std::string out;
      http::AppendGrpcStatusFields(14, arg, &out);
      int lines = 0;
      for (size_t i = 0; i < out.size(); ++i) {
        const char c = out[i];
        if (c == '\r') {
          if (i + 1 >= out.size() || out[i + 1] != '\n') {
            Violation(kName, "a bare CR in the status fields", out);
          }
          ++lines;
          ++i;
        } else if (c < 0x20 || c > 0x7e) {
          Violation(kName, "a byte that cannot go in a field value", out);
        }
      }
      if (lines != 2) {
        Violation(kName, "the status fields are not two lines", out);
      }
      return 1;
    }
  }
}

}  // namespace torii::fuzz

TORII_FUZZ_ENTRY(FuzzGrpc)
