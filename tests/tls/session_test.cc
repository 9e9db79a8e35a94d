// tests/tls/session_test.cc: the memory engine (tls/session.h): a DownstreamSession and a
// UpstreamSession back to back: handshake facts, plaintext both ways in bounded chunks, the
// pause/drain backpressure, close_notify, bad input (plain HTTP, garbage), floods, timeouts.
#include "tls/session.h"

#include <gtest/gtest.h>

#include <random>

#include "tests/tls/tls_test_util.h"

namespace torii::tls {
namespace {

using testing::Collector;
using testing::MakeClient;
using testing::MakeServer;
using testing::Options;
using testing::Pki;
using testing::Pump;
using testing::RawClient;
using testing::TrustingTestCa;

class SessionTest : public ::testing::Test {
 protected:
  std::shared_ptr<const ServerContext> server_ctx_ =
      MakeServer(Options({Pki::Get().a_ec, Pki::Get().b_ec}));
  std::shared_ptr<const ClientContext> client_ctx_ = MakeClient(TrustingTestCa());
};

std::string Pattern(size_t size, uint32_t seed) {
  std::string out(size, '\0');
  std::mt19937 rng(seed);
  for (char& c : out) {
    c = static_cast<char>(rng());
  }
  return out;
}

// A torii client and a torii server agree on TLS 1.3, ALPN http/1.1 and the SNI, and the
// server counts one full handshake.
TEST_F(SessionTest, HandshakeFacts) {
  DownstreamSession server(server_ctx_);
  UpstreamSession client(client_ctx_, "b.test");
  EXPECT_EQ(server.handshake_state(), HandshakeState::kInProgress);
  ASSERT_EQ(client.Start(), Status::kOk);
  Collector from_server, from_client;
  Pump(client, from_server, server, from_client);
  ASSERT_TRUE(server.handshake_done()) << server.failure_reason();
  ASSERT_TRUE(client.handshake_done()) << client.failure_reason();
  EXPECT_EQ(server.version(), "TLSv1.3");
  EXPECT_EQ(client.version(), "TLSv1.3");
  EXPECT_EQ(server.cipher(), client.cipher());
  EXPECT_FALSE(server.cipher().empty());
  EXPECT_EQ(server.alpn(), "http/1.1");
  EXPECT_EQ(client.alpn(), "http/1.1");
  EXPECT_EQ(server.sni(), "b.test");
  EXPECT_FALSE(server.resumed());
  EXPECT_EQ(server_ctx_->stats().full.load(), 1u);
  EXPECT_EQ(server_ctx_->stats().resumed.load(), 0u);
  EXPECT_EQ(server_ctx_->stats().total_failures(), 0u);
  EXPECT_EQ(client_ctx_->stats().full.load(), 1u);
}

// Facts are empty before the handshake completes.
TEST_F(SessionTest, FactsEmptyBeforeHandshake) {
  DownstreamSession server(server_ctx_);
  EXPECT_EQ(server.version(), "");
  EXPECT_EQ(server.cipher(), "");
  EXPECT_EQ(server.alpn(), "");
  EXPECT_FALSE(server.resumed());
  EXPECT_EQ(server.PendingOutput(), "");
}

// 1 MiB each way arrives intact, in chunks of at most kChunk bytes.
TEST_F(SessionTest, MebibyteRoundTrip) {
  DownstreamSession server(server_ctx_);
  UpstreamSession client(client_ctx_, "a.test");
  ASSERT_EQ(client.Start(), Status::kOk);
  Collector at_client, at_server;
  Pump(client, at_client, server, at_server);
  ASSERT_TRUE(server.handshake_done());
  const std::string up = Pattern(1 << 20, 1);
  const std::string down = Pattern(1 << 20, 2);
  ASSERT_EQ(client.Write(up), Status::kOk);
  ASSERT_EQ(server.Write(down), Status::kOk);
  Pump(client, at_client, server, at_server);
  EXPECT_EQ(at_server.data.size(), up.size());
  EXPECT_TRUE(at_server.data == up);
  EXPECT_EQ(at_client.data.size(), down.size());
  EXPECT_TRUE(at_client.data == down);
  EXPECT_LE(at_server.largest, Session::kChunk);
  EXPECT_LE(at_client.largest, Session::kChunk);
  EXPECT_GE(at_server.chunks, (1u << 20) / Session::kChunk);
}

// Ciphertext fed a few bytes at a time (records split anywhere) still decrypts in order.
TEST_F(SessionTest, FragmentedCiphertext) {
  DownstreamSession server(server_ctx_);
  UpstreamSession client(client_ctx_, "a.test");
  ASSERT_EQ(client.Start(), Status::kOk);
  Collector at_client, at_server;
  Pump(client, at_client, server, at_server);
  ASSERT_TRUE(server.handshake_done());
  const std::string message = Pattern(100000, 3);
  ASSERT_EQ(client.Write(message), Status::kOk);
  const std::string wire(client.PendingOutput());
  client.ConsumeOutput(wire.size());
  for (size_t off = 0; off < wire.size(); off += 7) {
    ASSERT_EQ(server.Receive(std::string_view(wire).substr(off, 7), at_server), Status::kOk);
  }
  EXPECT_TRUE(at_server.data == message);
  EXPECT_EQ(server.buffered_input(), 0u);
}

// A sink that pauses gets no more plaintext; the rest stays buffered as ciphertext (bounded)
// and comes out with Drain().
TEST_F(SessionTest, PauseAndDrain) {
  DownstreamSession server(server_ctx_);
  UpstreamSession client(client_ctx_, "a.test");
  ASSERT_EQ(client.Start(), Status::kOk);
  Collector at_client, at_server;
  Pump(client, at_client, server, at_server);
  ASSERT_TRUE(server.handshake_done());
  const std::string message = Pattern(200000, 4);
  ASSERT_EQ(client.Write(message), Status::kOk);
  const std::string wire(client.PendingOutput());
  client.ConsumeOutput(wire.size());
  std::string got;
  size_t calls = 0;
  const auto one_chunk = [&](std::string_view chunk) {
    got.append(chunk);
    ++calls;
    return false;  // full after every chunk
  };
  ASSERT_EQ(server.Receive(wire, one_chunk), Status::kOk);
  EXPECT_EQ(calls, 1u);
  EXPECT_LE(got.size(), Session::kChunk);
  EXPECT_GT(server.buffered_input(), 0u);
  EXPECT_LE(server.buffered_input(), wire.size());
  while (got.size() < message.size()) {
    const size_t before = calls;
    ASSERT_EQ(server.Drain(one_chunk), Status::kOk);
    ASSERT_EQ(calls, before + 1);
  }
  EXPECT_TRUE(got == message);
  EXPECT_EQ(server.buffered_input(), 0u);
}

// A peer that keeps sending while the caller refuses plaintext hits kMaxBufferedInput.
TEST_F(SessionTest, BufferedInputIsBounded) {
  DownstreamSession server(server_ctx_);
  UpstreamSession client(client_ctx_, "a.test");
  ASSERT_EQ(client.Start(), Status::kOk);
  Collector at_client, at_server;
  Pump(client, at_client, server, at_server);
  ASSERT_TRUE(server.handshake_done());
  const auto refuse = [](std::string_view) { return false; };
  Status status = Status::kOk;
  size_t sent = 0;
  while (status == Status::kOk && sent < 4 * Session::kMaxBufferedInput) {
    ASSERT_EQ(client.Write(Pattern(64 * 1024, 5)), Status::kOk);
    const std::string wire(client.PendingOutput());
    client.ConsumeOutput(wire.size());
    sent += wire.size();
    status = server.Receive(wire, refuse);
  }
  EXPECT_EQ(status, Status::kFailed);
  EXPECT_EQ(server.failure(), Failure::kInputOverflow);
  EXPECT_LE(sent, Session::kMaxBufferedInput + 2 * 64 * 1024 + 4096);
  EXPECT_EQ(server.buffered_input(), 0u);  // dropped on failure
  EXPECT_EQ(server_ctx_->stats().failed_after_handshake.load(), 1u);
}

// A client's request written before the handshake completes is sent once it does.
TEST_F(SessionTest, WriteBeforeHandshakeIsSentAfter) {
  DownstreamSession server(server_ctx_);
  UpstreamSession client(client_ctx_, "a.test");
  ASSERT_EQ(client.Start(), Status::kOk);
  ASSERT_EQ(client.Write("GET / HTTP/1.1\r\nHost: a.test\r\n\r\n"), Status::kOk);
  Collector at_client, at_server;
  Pump(client, at_client, server, at_server);
  EXPECT_EQ(at_server.data, "GET / HTTP/1.1\r\nHost: a.test\r\n\r\n");
}

// close_notify: the receiver reports kClosed once, and keeps reporting it; writes after our
// own Shutdown() are refused.
TEST_F(SessionTest, CloseNotify) {
  DownstreamSession server(server_ctx_);
  UpstreamSession client(client_ctx_, "a.test");
  ASSERT_EQ(client.Start(), Status::kOk);
  Collector at_client, at_server;
  Pump(client, at_client, server, at_server);
  ASSERT_TRUE(server.handshake_done());
  ASSERT_EQ(client.Write("last words"), Status::kOk);
  ASSERT_EQ(client.Shutdown(), Status::kOk);
  EXPECT_EQ(client.Write("more"), Status::kClosed);
  const std::string wire(client.PendingOutput());
  client.ConsumeOutput(wire.size());
  EXPECT_FALSE(server.close_notify_received());
  EXPECT_EQ(server.Receive(wire, at_server), Status::kClosed);
  EXPECT_EQ(at_server.data, "last words");
  EXPECT_TRUE(server.close_notify_received());
  EXPECT_EQ(server.Drain(at_server), Status::kClosed);
  EXPECT_FALSE(server.failed());
}

// Output can go straight to a sink instead of the buffer (and what was pending goes first).
TEST_F(SessionTest, OutputSink) {
  DownstreamSession server(server_ctx_);
  UpstreamSession client(client_ctx_, "a.test");
  ASSERT_EQ(client.Start(), Status::kOk);
  const std::string hello(client.PendingOutput());
  ASSERT_FALSE(hello.empty());
  std::string wire;
  client.SetOutputSink(OutputSink{
      [](void* ctx, std::string_view bytes) { static_cast<std::string*>(ctx)->append(bytes); },
      &wire});
  EXPECT_EQ(client.PendingOutput(), "");
  EXPECT_EQ(wire, hello);
  Collector at_client, at_server;
  for (int round = 0; round < 4; ++round) {
    server.Receive(wire, at_server);
    wire.clear();
    const std::string back(server.PendingOutput());
    server.ConsumeOutput(back.size());
    client.Receive(back, at_client);
    EXPECT_EQ(client.PendingOutput(), "");
  }
  ASSERT_TRUE(client.handshake_done());
  ASSERT_TRUE(server.handshake_done());
  wire.clear();
  ASSERT_EQ(client.Write("via sink"), Status::kOk);
  EXPECT_EQ(client.PendingOutput(), "");
  ASSERT_FALSE(wire.empty());
  server.Receive(wire, at_server);
  EXPECT_EQ(at_server.data, "via sink");
}

// Plain HTTP on the TLS port fails at once with "plain HTTP on TLS port", and writes no
// TLS alert (the caller may answer 400 in plain text).
TEST_F(SessionTest, PlainHttpIsRecognised) {
  for (const std::string request :
       {"GET / HTTP/1.1\r\n\r\n", "OPTIONS * HTTP/1.1\r\n\r\n", "PRI * HTTP/2.0\r\n", "POS"}) {
    DownstreamSession server(server_ctx_);
    Collector plain;
    EXPECT_EQ(server.Receive(request, plain), Status::kFailed) << request;
    EXPECT_EQ(server.failure(), Failure::kPlainHttp) << request;
    EXPECT_EQ(server.failure_reason(), "plain HTTP on TLS port");
    EXPECT_EQ(server.PendingOutput(), "");
    EXPECT_EQ(server.handshake_state(), HandshakeState::kFailed);
  }
  EXPECT_EQ(server_ctx_->stats().failures(Failure::kPlainHttp), 4u);
  // A backend answering in plain HTTP is recognised the same way.
  UpstreamSession client(client_ctx_, "a.test");
  ASSERT_EQ(client.Start(), Status::kOk);
  Collector plain;
  EXPECT_EQ(client.Receive(std::string_view("HTTP/1.1 400 Bad Request\r\n"), plain),
            Status::kFailed);
  EXPECT_EQ(client.failure(), Failure::kPlainHttp);
}

// Garbage never crashes, never yields plaintext, and ends in a failure or a wait for more.
TEST_F(SessionTest, GarbageFailsWithoutCrash) {
  std::mt19937 rng(42);
  size_t failed = 0;
  for (int i = 0; i < 300; ++i) {
    std::string junk = Pattern(1 + rng() % 600, static_cast<uint32_t>(i));
    if (i % 3 == 0) {
      junk[0] = 0x16;  // a handshake record header with junk after it
      junk.resize(std::max<size_t>(junk.size(), 6));
      junk[1] = 0x03;
      junk[2] = 0x01;
    }
    DownstreamSession server(server_ctx_);
    Collector plain;
    const Status status = server.Receive(junk, plain);
    EXPECT_NE(status, Status::kClosed);
    EXPECT_TRUE(plain.data.empty());
    EXPECT_FALSE(server.handshake_done());
    if (status == Status::kFailed) {
      ++failed;
      EXPECT_NE(server.failure(), Failure::kNone);
      EXPECT_EQ(server.Receive(junk, plain), Status::kFailed);  // stays failed
    }
  }
  EXPECT_GT(failed, 150u);
  EXPECT_EQ(server_ctx_->stats().full.load(), 0u);
}

// A corrupted record after the handshake fails as "bad record" (T9: tampering/truncation).
TEST_F(SessionTest, CorruptedRecordIsBadRecord) {
  DownstreamSession server(server_ctx_);
  UpstreamSession client(client_ctx_, "a.test");
  ASSERT_EQ(client.Start(), Status::kOk);
  Collector at_client, at_server;
  Pump(client, at_client, server, at_server);
  ASSERT_TRUE(server.handshake_done());
  ASSERT_EQ(client.Write("POST / HTTP/1.1\r\n"), Status::kOk);
  std::string wire(client.PendingOutput());
  client.ConsumeOutput(wire.size());
  wire[wire.size() - 3] ^= 0x40;
  EXPECT_EQ(server.Receive(wire, at_server), Status::kFailed);
  EXPECT_EQ(server.failure(), Failure::kBadRecord);
  EXPECT_EQ(at_server.data, "");
  EXPECT_FALSE(server.close_notify_received());
}

// A stream of KeyUpdates is cut off (T3); a handful is fine.
TEST_F(SessionTest, KeyUpdateFloodIsCutOff) {
  for (const int updates : {5, 200}) {
    DownstreamSession server(server_ctx_);
    RawClient client("a.test");
    Pump(client, server);
    ASSERT_TRUE(server.handshake_done());
    Status status = Status::kOk;
    for (int i = 0; i < updates && status == Status::kOk; ++i) {
      ASSERT_EQ(SSL_key_update(client.ssl(), SSL_KEY_UPDATE_REQUESTED), 1);
      ASSERT_EQ(SSL_do_handshake(client.ssl()), 1);
      const std::string wire = client.TakeOutput();
      Collector plain;
      status = server.Receive(wire, plain);
      client.Give(server.PendingOutput());
      server.ConsumeOutput(server.PendingOutput().size());
      client.Step();
    }
    if (updates == 5) {
      EXPECT_EQ(status, Status::kOk);
      EXPECT_TRUE(server.handshake_done());
    } else {
      EXPECT_EQ(status, Status::kFailed);
      EXPECT_EQ(server.failure(), Failure::kHandshakeFlood);
    }
  }
}

// The caller's handshake deadline fails the session and is counted; no effect afterwards.
TEST_F(SessionTest, TimeoutIsCounted) {
  DownstreamSession slow(server_ctx_);
  slow.FailTimeout();
  EXPECT_EQ(slow.failure(), Failure::kTimeout);
  EXPECT_EQ(server_ctx_->stats().failures(Failure::kTimeout), 1u);
  DownstreamSession server(server_ctx_);
  RawClient client("a.test");
  Pump(client, server);
  server.FailTimeout();
  EXPECT_TRUE(server.handshake_done());
  EXPECT_EQ(server_ctx_->stats().failures(Failure::kTimeout), 1u);
}

// ReleaseBuffers drops idle buffers and keeps pending bytes.
TEST_F(SessionTest, ReleaseBuffersKeepsPendingOutput) {
  UpstreamSession client(client_ctx_, "a.test");
  ASSERT_EQ(client.Start(), Status::kOk);
  const std::string hello(client.PendingOutput());
  client.ReleaseBuffers();
  EXPECT_EQ(client.PendingOutput(), hello);
  client.ConsumeOutput(hello.size());
  client.ReleaseBuffers();
  EXPECT_EQ(client.PendingOutput(), "");
}

}  // namespace
}  // namespace torii::tls
