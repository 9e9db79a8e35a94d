// http/grpc.h: what torii must know of gRPC (over HTTP/2), as pure functions.
//
// gRPC calls are routed, limited and balanced like any request. Two things differ: a call
// torii itself cannot complete (no backend, timeout, limit, refusal) is answered the way a
// gRPC client understands, HTTP 200 with grpc-status and grpc-message in a trailers-only
// response (https://github.com/grpc/grpc/blob/master/doc/http-grpc-status-mapping.md), and
// the client's grpc-timeout bounds how long torii waits for the backend.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace torii::http {

// The request's Content-Type says gRPC: "application/grpc" or "application/grpc+<codec>"
// (parameters allowed; gRPC-Web, "application/grpc-web...", is not gRPC over HTTP/2).
bool IsGrpcContentType(std::string_view content_type);

// The gRPC status for a reply torii makes itself with HTTP status `http_status`: 4
// DEADLINE_EXCEEDED for timeouts (408, 504), 8 RESOURCE_EXHAUSTED for limits (413, 429, 431),
// 14 UNAVAILABLE when no backend could answer (502, 503), 16 UNAUTHENTICATED (401),
// 7 PERMISSION_DENIED (403), 12 UNIMPLEMENTED (404, 405, 501), 13 INTERNAL otherwise.
int GrpcStatusFor(int http_status);

// A grpc-timeout value ("100m", "5S", up to 8 digits and a unit H M S m u n) in milliseconds,
// rounded up (a timeout under 1 ms is 1 ms); nullopt when malformed.
std::optional<uint64_t> ParseGrpcTimeout(std::string_view value);

// "grpc-status: N\r\ngrpc-message: TEXT\r\n" for a trailers-only reply; `message`
// percent-encoded as gRPC requires.
void AppendGrpcStatusFields(int grpc_status, std::string_view message, std::string* out);

// The gRPC health protocol (grpc.health.v1.Health/Check), as framed messages: the request for
// `service` ("" = the server as a whole), and the status a response reports (1 SERVING,
// 2 NOT_SERVING, 0 UNKNOWN, 3 SERVICE_UNKNOWN), nullopt when it is not one framed message.
std::string GrpcHealthCheckRequest(std::string_view service);
std::optional<uint32_t> GrpcHealthStatus(std::string_view framed);

}  // namespace torii::http
