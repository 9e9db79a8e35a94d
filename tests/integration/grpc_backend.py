#!/usr/bin/python3
"""A gRPC backend for the integration tests (python3-grpcio, no generated code: methods take
and return raw bytes). Writes "HOST:PORT" to --ready-file once serving.

/test.Echo/Unary    the request back
/test.Echo/Fail     NOT_FOUND "no such thing"
/test.Echo/Slow     the request back after 2 s
/test.Echo/Stream   server streaming: int(request) messages of 100 bytes, numbered
/test.Echo/Collect  client streaming: the total length of the messages, as text
/test.Echo/SetHealth  b"1": the health service says SERVING from now on, b"0": NOT_SERVING
/grpc.health.v1.Health/Check  the gRPC health protocol (raw protobuf: status 1 or 2)
"""
import argparse
import os
import time
from concurrent import futures

import grpc

MAX = 32 << 20
HEALTH = {"serving": True}


def unary(request, context):
    return request


def fail(request, context):
    context.abort(grpc.StatusCode.NOT_FOUND, "no such thing")


def slow(request, context):
    time.sleep(2)
    return request


def stream(request, context):
    for i in range(int(request)):
        yield (b"%08d" % i).ljust(100, b".")


def collect(request_iterator, context):
    return str(sum(len(m) for m in request_iterator)).encode()


def set_health(request, context):
    HEALTH["serving"] = request == b"1"
    return b""


def health_check(request, context):
    return b"\x08\x01" if HEALTH["serving"] else b"\x08\x02"  # HealthCheckResponse.status


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ready-file", required=True)
    args = ap.parse_args()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16),
                         options=[("grpc.max_receive_message_length", MAX),
                                  ("grpc.max_send_message_length", MAX)])
    handler = grpc.method_handlers_generic_handler("test.Echo", {
        "Unary": grpc.unary_unary_rpc_method_handler(unary),
        "Fail": grpc.unary_unary_rpc_method_handler(fail),
        "Slow": grpc.unary_unary_rpc_method_handler(slow),
        "Stream": grpc.unary_stream_rpc_method_handler(stream),
        "Collect": grpc.stream_unary_rpc_method_handler(collect),
        "SetHealth": grpc.unary_unary_rpc_method_handler(set_health),
    })
    health = grpc.method_handlers_generic_handler("grpc.health.v1.Health", {
        "Check": grpc.unary_unary_rpc_method_handler(health_check),
    })
    server.add_generic_rpc_handlers((handler, health))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    with open(args.ready_file + ".tmp", "w") as f:
        f.write(f"127.0.0.1:{port}\n")
    os.rename(args.ready_file + ".tmp", args.ready_file)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
