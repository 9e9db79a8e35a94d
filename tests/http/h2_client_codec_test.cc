// tests/http/h2_client_codec_test.cc: H2ClientCodec (http/h2_client_codec.h) against
// nghttp2's server session in memory (requests, responses, bodies both ways, flow control,
// trailers, CONTINUATION, GOAWAY, RST_STREAM, PING), its header encoding decoded by nghttp2's
// inflater, and hostile frames written byte by byte: each connection error answered with its
// GOAWAY code, each malformed response with RST_STREAM PROTOCOL_ERROR on its stream alone.
#include "http/h2_client_codec.h"

#include <gtest/gtest.h>
#include <nghttp2/nghttp2.h>

#include <cstring>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "tests/http/h2_test_util.h"

namespace torii::http {
namespace {

// What the codec told its host.
struct Seen : H2ClientCodec::Host {
  std::map<int32_t, Fields> fields;
  std::map<int32_t, std::vector<bool>> heads;  // end_stream of each header block
  std::map<int32_t, std::string> data;
  std::map<int32_t, bool> data_end;
  int settings = 0;
  int goaways = 0;
  int ping_acks = 0;
  std::vector<int32_t> malformed;
  void OnField(int32_t s, std::string_view n, std::string_view v) override {
    fields[s].emplace_back(n, v);
  }
  void OnHeaders(int32_t s, bool end) override { heads[s].push_back(end); }
  void OnData(int32_t s, std::string_view b) override { data[s].append(b); }
  void OnDataEnd(int32_t s) override { data_end[s] = true; }
  void OnSettings() override { ++settings; }
  void OnGoaway() override { ++goaways; }
  void OnPingAck() override { ++ping_acks; }
  void OnMalformed(int32_t s) override { malformed.push_back(s); }
};

std::vector<H2OutField> Out(const Fields& f) {
  std::vector<H2OutField> out;
  for (const auto& [n, v] : f) {
    out.push_back(H2OutField{n, v});
  }
  return out;
}

const Fields kGet = {
    {":method", "GET"}, {":scheme", "http"}, {":authority", "a.test"}, {":path", "/x"}};

// ---- Header encoding ----

Fields Inflate(std::string_view block) {
  Fields out;
  EXPECT_TRUE(NgInflater().Decode(block, &out));
  return out;
}

TEST(H2HeaderEncoding, EveryStaticNameAndLongValuesRoundTrip) {
  const char* names[] = {":authority",
                         ":method",
                         ":path",
                         ":scheme",
                         ":status",
                         "accept-charset",
                         "accept-encoding",
                         "accept-language",
                         "accept-ranges",
                         "accept",
                         "access-control-allow-origin",
                         "age",
                         "allow",
                         "authorization",
                         "cache-control",
                         "content-disposition",
                         "content-encoding",
                         "content-language",
                         "content-length",
                         "content-location",
                         "content-range",
                         "content-type",
                         "cookie",
                         "date",
                         "etag",
                         "expect",
                         "expires",
                         "from",
                         "host",
                         "if-match",
                         "if-modified-since",
                         "if-none-match",
                         "if-range",
                         "if-unmodified-since",
                         "last-modified",
                         "link",
                         "location",
                         "max-forwards",
                         "proxy-authenticate",
                         "proxy-authorization",
                         "range",
                         "referer",
                         "refresh",
                         "retry-after",
                         "server",
                         "set-cookie",
                         "strict-transport-security",
                         "transfer-encoding",
                         "user-agent",
                         "vary",
                         "via",
                         "www-authenticate",
                         "x-custom",
                         "x-request-id"};
  Fields fields;
  for (const char* n : names) {
    fields.emplace_back(n, std::string("v-") + n);
  }
  fields.emplace_back(":method", "GET");
  fields.emplace_back(":method", "POST");
  fields.emplace_back(":path", "/");
  fields.emplace_back(":scheme", "https");
  fields.emplace_back("x-126", std::string(126, 'a'));
  fields.emplace_back("x-127", std::string(127, 'b'));
  fields.emplace_back("x-128", std::string(128, 'c'));
  fields.emplace_back(std::string(200, 'n'), std::string(20000, 'd'));
  fields.emplace_back("x-empty", "");
  std::string block;
  const std::vector<H2OutField> out = Out(fields);
  EncodeHeaderBlock(out, /*table_update=*/true, &block);
  EXPECT_EQ(block[0], 0x20);  // the table size update comes first
  EXPECT_EQ(Inflate(block), fields);
  // Without Huffman coding or indexing the block holds every name outside the static table and
  // every value as they are.
  EXPECT_NE(block.find("v-user-agent"), std::string::npos);
  EXPECT_NE(block.find("x-request-id"), std::string::npos);
  // Static pairs are one byte: :method GET is index 2.
  std::string get;
  const H2OutField m[] = {{":method", "GET"}};
  EncodeHeaderBlock(m, false, &get);
  EXPECT_EQ(get, std::string("\x82", 1));
  // Authorization and cookies go never-indexed (0001xxxx).
  std::string auth;
  const H2OutField a[] = {{"authorization", "Basic x"}};
  EncodeHeaderBlock(a, false, &auth);
  EXPECT_EQ(static_cast<uint8_t>(auth[0]) & 0xf0, 0x10);
}

// ---- Against nghttp2's server session ----

class Server {
 public:
  struct Request {
    Fields fields;
    std::string body;
    Fields trailers;
    bool ended = false;
    bool head_done = false;
  };

  explicit Server(std::vector<nghttp2_settings_entry> settings = {}) {
    nghttp2_session_callbacks* cbs = nullptr;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_on_header_callback(
        cbs, [](nghttp2_session*, const nghttp2_frame* f, const uint8_t* name, size_t namelen,
                const uint8_t* value, size_t valuelen, uint8_t, void* user) {
          auto* s = static_cast<Server*>(user);
          Request& r = s->requests[f->hd.stream_id];
          (r.head_done ? r.trailers : r.fields)
              .emplace_back(std::string(reinterpret_cast<const char*>(name), namelen),
                            std::string(reinterpret_cast<const char*>(value), valuelen));
          return 0;
        });
    nghttp2_session_callbacks_set_on_frame_recv_callback(
        cbs, [](nghttp2_session*, const nghttp2_frame* f, void* user) {
          auto* s = static_cast<Server*>(user);
          if (f->hd.type == NGHTTP2_HEADERS) {
            s->requests[f->hd.stream_id].head_done = true;
          }
          if ((f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) &&
              (f->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0) {
            s->requests[f->hd.stream_id].ended = true;
          }
          if (f->hd.type == NGHTTP2_PING && (f->hd.flags & NGHTTP2_FLAG_ACK) != 0) {
            ++s->ping_acks;
          }
          return 0;
        });
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(
        cbs,
        [](nghttp2_session*, uint8_t, int32_t id, const uint8_t* data, size_t len, void* user) {
          static_cast<Server*>(user)->requests[id].body.append(reinterpret_cast<const char*>(data),
                                                               len);
          return 0;
        });
    nghttp2_session_server_new(&ng, cbs, this);
    nghttp2_session_callbacks_del(cbs);
    nghttp2_submit_settings(ng, NGHTTP2_FLAG_NONE, settings.data(), settings.size());
  }
  ~Server() { nghttp2_session_del(ng); }

  // A response with `body` (ending the stream), and trailers after it when given; with
  // neither, the HEADERS end the stream.
  void Respond(int32_t id, const Fields& head, std::string body, Fields trailers = {}) {
    std::vector<nghttp2_nv> nv = Nvs(head);
    if (body.empty() && trailers.empty()) {
      ASSERT_EQ(nghttp2_submit_response(ng, id, nv.data(), nv.size(), nullptr), 0);
      return;
    }
    bodies_[id] = {std::move(body), std::move(trailers)};
    nghttp2_data_provider p;
    p.source.ptr = this;
    p.read_callback = [](nghttp2_session* ng, int32_t id, uint8_t* buf, size_t length,
                         uint32_t* flags, nghttp2_data_source* src, void*) -> ssize_t {
      auto* s = static_cast<Server*>(src->ptr);
      auto& [b, t] = s->bodies_[id];
      const size_t n = std::min(length, b.size());
      std::memcpy(buf, b.data(), n);
      b.erase(0, n);
      if (b.empty()) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        if (!t.empty()) {
          std::vector<nghttp2_nv> tv = Nvs(t);
          nghttp2_submit_trailer(ng, id, tv.data(), tv.size());
          *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
        }
      }
      return static_cast<ssize_t>(n);
    };
    ASSERT_EQ(nghttp2_submit_response(ng, id, nv.data(), nv.size(), &p), 0);
  }

  nghttp2_session* ng = nullptr;
  std::map<int32_t, Request> requests;
  int ping_acks = 0;

 private:
  std::map<int32_t, std::pair<std::string, Fields>> bodies_;
};

struct Pair {
  explicit Pair(std::vector<nghttp2_settings_entry> settings = {})
      : server(std::move(settings)), codec(seen, H2ClientCodec::Settings{}) {}

  // Both ways until neither has anything to say.
  void Pump() {
    for (int round = 0; round < 100; ++round) {
      bool moved = false;
      std::string& out = codec.output();
      if (!out.empty()) {
        const ssize_t n = nghttp2_session_mem_recv(
            server.ng, reinterpret_cast<const uint8_t*>(out.data()), out.size());
        ASSERT_EQ(n, static_cast<ssize_t>(out.size())) << nghttp2_strerror(static_cast<int>(n));
        out.clear();
        moved = true;
      }
      for (;;) {
        const uint8_t* bytes = nullptr;
        const ssize_t n = nghttp2_session_mem_send(server.ng, &bytes);
        ASSERT_GE(n, 0);
        if (n == 0) {
          break;
        }
        ASSERT_TRUE(codec.Receive(
            std::string_view(reinterpret_cast<const char*>(bytes), static_cast<size_t>(n))))
            << codec.failure();
        moved = true;
      }
      if (!moved) {
        return;
      }
    }
    FAIL() << "no quiet after 100 rounds";
  }
  size_t SendBody(int32_t id, std::string_view body, bool end) {
    return SendBodyFrames(codec, id, body, end);
  }

  Seen seen;
  Server server;
  H2ClientCodec codec;
};

TEST(H2ClientCodecTest, RequestAndResponse) {
  Pair p;
  Fields req = kGet;
  req.emplace_back("user-agent", "t/1");
  req.emplace_back("cookie", "a=1");
  req.emplace_back("x-long", std::string(5000, 'l'));
  const int32_t id = p.codec.Open(Out(req), /*end_stream=*/true);
  ASSERT_EQ(id, 1);
  p.Pump();
  EXPECT_EQ(p.seen.settings, 1);
  EXPECT_TRUE(p.codec.settings_received());
  ASSERT_TRUE(p.server.requests[1].ended);
  EXPECT_EQ(p.server.requests[1].fields, req);
  p.server.Respond(1, {{":status", "200"}, {"content-type", "text/plain"}, {"content-length", "5"}},
                   "hello");
  p.Pump();
  EXPECT_EQ(p.seen.fields[1],
            (Fields{{":status", "200"}, {"content-type", "text/plain"}, {"content-length", "5"}}));
  EXPECT_EQ(p.seen.heads[1], std::vector<bool>{false});
  EXPECT_EQ(p.seen.data[1], "hello");
  EXPECT_TRUE(p.seen.data_end[1]);
  const auto closed = p.codec.TakeClosed();
  ASSERT_EQ(closed.size(), 1u);
  EXPECT_EQ(closed[0], std::make_pair(int32_t{1}, H2Error::kNoError));
  EXPECT_EQ(p.codec.open_streams(), 0u);
}

TEST(H2ClientCodecTest, ManyStreamsAnsweredOutOfOrder) {
  Pair p;
  std::vector<int32_t> ids;
  for (int i = 0; i < 50; ++i) {
    Fields req = kGet;
    req[3].second = "/" + std::to_string(i);
    ids.push_back(p.codec.Open(Out(req), true));
  }
  p.Pump();
  for (auto it = ids.rbegin(); it != ids.rend(); ++it) {
    p.server.Respond(*it, {{":status", "200"}}, "body " + std::to_string(*it));
  }
  p.Pump();
  for (int32_t id : ids) {
    EXPECT_EQ(p.server.requests[id].fields[3].second, "/" + std::to_string((id - 1) / 2));
    EXPECT_EQ(p.seen.data[id], "body " + std::to_string(id));
  }
  EXPECT_EQ(p.codec.TakeClosed().size(), 50u);
}

// The request body waits for the server's window; the response body stops at the stream's
// window until the host takes it (Consume).
TEST(H2ClientCodecTest, FlowControlBothWays) {
  Pair p({{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1000}});
  Fields req = kGet;
  req[0].second = "POST";
  const int32_t id = p.codec.Open(Out(req), false);
  p.Pump();
  const std::string body(5000, 'q');
  size_t sent = p.SendBody(id, body, true);
  EXPECT_EQ(sent, 1000u);  // the stream's window as the server set it
  p.Pump();
  // nghttp2 gives its window back as it takes the bytes: the rest goes.
  for (int i = 0; i < 10 && sent < body.size(); ++i) {
    sent += p.SendBody(id, std::string_view(body).substr(sent), true);
    p.Pump();
  }
  ASSERT_EQ(sent, body.size());
  EXPECT_EQ(p.server.requests[id].body, body);
  EXPECT_TRUE(p.server.requests[id].ended);
  // 200 KiB back: 65,535 bytes arrive, then nothing until they are taken.
  const std::string big(200 * 1024, 'r');
  p.server.Respond(id, {{":status", "200"}}, big);
  p.Pump();
  EXPECT_EQ(p.seen.data[id].size(), 65535u);
  for (int i = 0; i < 20 && p.seen.data[id].size() < big.size(); ++i) {
    p.codec.Consume(id, p.seen.data[id].size());
    p.seen.data[id].clear();
    p.Pump();
  }
  EXPECT_TRUE(p.seen.data_end[id]);
}

TEST(H2ClientCodecTest, TrailersBothWaysAndContinuation) {
  Pair p;
  Fields req = kGet;
  req[0].second = "POST";
  req.emplace_back("te", "trailers");
  const int32_t id = p.codec.Open(Out(req), false);
  p.SendBody(id, "abc", false);
  const Fields trailers = {{"x-checksum", "1"}, {"x-big", std::string(40000, 't')}};
  p.codec.SendTrailers(id, Out(trailers));  // 40 KB: a HEADERS and CONTINUATION frames
  p.Pump();
  EXPECT_EQ(p.server.requests[id].body, "abc");
  EXPECT_EQ(p.server.requests[id].trailers, trailers);
  EXPECT_TRUE(p.server.requests[id].ended);
  p.server.Respond(id, {{":status", "200"}, {"content-type", "application/grpc"}}, "xyz",
                   {{"grpc-status", "0"}, {"grpc-message", "ok"}});
  p.Pump();
  EXPECT_EQ(p.seen.data[id], "xyz");
  EXPECT_EQ(p.seen.heads[id], (std::vector<bool>{false, true}));
  EXPECT_EQ(p.seen.fields[id].back(),
            std::make_pair(std::string("grpc-message"), std::string("ok")));
  EXPECT_FALSE(p.seen.data_end[id]);  // the trailers ended it
  EXPECT_EQ(p.codec.TakeClosed().size(), 1u);
}

TEST(H2ClientCodecTest, GoawayRefusesStreamsAboveItsLastId) {
  Pair p;
  const int32_t a = p.codec.Open(Out(kGet), true);
  const int32_t b = p.codec.Open(Out(kGet), true);
  const int32_t c = p.codec.Open(Out(kGet), true);
  p.Pump();
  nghttp2_submit_goaway(p.server.ng, NGHTTP2_FLAG_NONE, a, NGHTTP2_NO_ERROR, nullptr, 0);
  p.Pump();
  EXPECT_EQ(p.seen.goaways, 1);
  EXPECT_TRUE(p.codec.goaway_received());
  const auto closed = p.codec.TakeClosed();
  EXPECT_EQ(closed, (std::vector<std::pair<int32_t, H2Error>>{{b, H2Error::kRefusedStream},
                                                              {c, H2Error::kRefusedStream}}));
  EXPECT_EQ(p.codec.Open(Out(kGet), true), 0);  // no new stream after GOAWAY
  p.server.Respond(a, {{":status", "204"}}, "");
  p.Pump();
  EXPECT_EQ(p.seen.heads[a], std::vector<bool>{true});
}

TEST(H2ClientCodecTest, ResetPingAndSettings) {
  Pair p({{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 7}});
  const int32_t id = p.codec.Open(Out(kGet), true);
  p.Pump();
  EXPECT_EQ(p.codec.peer_max_streams(), 7u);
  nghttp2_submit_rst_stream(p.server.ng, NGHTTP2_FLAG_NONE, id, NGHTTP2_REFUSED_STREAM);
  p.Pump();
  EXPECT_EQ(p.codec.TakeClosed(),
            (std::vector<std::pair<int32_t, H2Error>>{{id, H2Error::kRefusedStream}}));
  EXPECT_TRUE(p.seen.malformed.empty());  // the backend's reset is not a malformed response
  p.codec.Ping();
  nghttp2_submit_ping(p.server.ng, NGHTTP2_FLAG_NONE, nullptr);
  p.Pump();
  EXPECT_EQ(p.seen.ping_acks, 1);
  EXPECT_EQ(p.server.ping_acks, 1);
  // The client resets a stream: RST_STREAM CANCEL reaches the server, the stream is closed.
  const int32_t next = p.codec.Open(Out(kGet), true);
  p.codec.Reset(next, H2Error::kCancel);
  p.Pump();
  EXPECT_EQ(p.codec.TakeClosed(),
            (std::vector<std::pair<int32_t, H2Error>>{{next, H2Error::kCancel}}));
  EXPECT_EQ(nghttp2_session_get_stream_user_data(p.server.ng, next), nullptr);
}

// ---- Hostile frames, byte by byte ----

struct Raw {
  Raw() : codec(seen, H2ClientCodec::Settings{}) {
    for (int i = 0; i < 3; ++i) {
      codec.Open(Out(kGet), true);  // streams 1, 3, 5
    }
    codec.output().clear();
  }
  bool Feed(std::string_view bytes) { return codec.Receive(bytes); }
  int64_t GoawayCode() { return GoawayCodeIn(codec.output()); }
  Seen seen;
  H2ClientCodec codec;
  Deflater deflater;
};

const std::string kSettings = Frame(0x4, 0, 0, "");

struct ConnCase {
  const char* what;
  std::string bytes;
  H2Error code;
};

TEST(H2ClientCodecTest, ConnectionErrorsAnswerGoaway) {
  Deflater d;
  const std::string ok_head = Deflater().Block({{":status", "200"}});
  std::string flood = kSettings + Frame(0x1, 0, 1, ok_head);
  for (int i = 0; i < 40; ++i) {
    flood += Frame(0x9, 0, 1, "");
  }
  const std::vector<ConnCase> cases = {
      {"preface not SETTINGS", Frame(0x6, 0, 0, std::string(8, 'p')), H2Error::kProtocol},
      {"frame over 16 KiB", kSettings + Frame(0x0, 0, 1, std::string(16385, 'x')),
       H2Error::kFrameSize},
      {"SETTINGS of 5 bytes", Frame(0x4, 0, 0, "12345"), H2Error::kFrameSize},
      {"SETTINGS on a stream", Frame(0x4, 0, 1, ""), H2Error::kProtocol},
      {"ENABLE_PUSH from a server", Frame(0x4, 0, 0, Setting(0x2, 1)), H2Error::kProtocol},
      {"INITIAL_WINDOW_SIZE 2^31", Frame(0x4, 0, 0, Setting(0x4, 0x80000000u)),
       H2Error::kFlowControl},
      {"MAX_FRAME_SIZE 100", Frame(0x4, 0, 0, Setting(0x5, 100)), H2Error::kProtocol},
      {"SETTINGS ACK with payload", kSettings + Frame(0x4, 0x1, 0, Setting(0x3, 1)),
       H2Error::kFrameSize},
      {"PING of 7 bytes", kSettings + Frame(0x6, 0, 0, "1234567"), H2Error::kFrameSize},
      {"PUSH_PROMISE", kSettings + Frame(0x5, 0x4, 1, U32(2) + ok_head), H2Error::kProtocol},
      {"HEADERS on an even stream", kSettings + Frame(0x1, 0x4, 2, ok_head), H2Error::kProtocol},
      {"HEADERS on a stream never opened", kSettings + Frame(0x1, 0x4, 7, ok_head),
       H2Error::kProtocol},
      {"HEADERS on stream 0", kSettings + Frame(0x1, 0x4, 0, ok_head), H2Error::kProtocol},
      {"DATA on stream 0", kSettings + Frame(0x0, 0, 0, "x"), H2Error::kProtocol},
      {"CONTINUATION alone", kSettings + Frame(0x9, 0x4, 1, ok_head), H2Error::kProtocol},
      {"a header block interrupted",
       kSettings + Frame(0x1, 0, 1, ok_head) + Frame(0x6, 0, 0, std::string(8, 'p')),
       H2Error::kProtocol},
      {"CONTINUATION flood", flood, H2Error::kEnhanceYourCalm},
      {"WINDOW_UPDATE of 0", kSettings + Frame(0x8, 0, 0, U32(0)), H2Error::kProtocol},
      {"connection window overflow", kSettings + Frame(0x8, 0, 0, U32(0x7fffffff)),
       H2Error::kFlowControl},
      {"RST_STREAM of 3 bytes", kSettings + Frame(0x3, 0, 1, "123"), H2Error::kFrameSize},
      {"GOAWAY of 4 bytes", kSettings + Frame(0x7, 0, 0, U32(0)), H2Error::kFrameSize},
      {"HPACK index past the tables", kSettings + Frame(0x1, 0x4, 1, "\xff\x7f"),
       H2Error::kCompression},
      {"DATA padding past the frame",
       kSettings + Frame(0x1, 0x4, 1, ok_head) + Frame(0x0, 0x8, 1, std::string("\x05xy", 3)),
       H2Error::kProtocol},
  };
  for (const ConnCase& c : cases) {
    Raw r;
    // Whole, and again one byte at a time: the same verdict.
    EXPECT_FALSE(r.Feed(c.bytes)) << c.what;
    EXPECT_TRUE(r.codec.failed()) << c.what;
    EXPECT_EQ(r.GoawayCode(), static_cast<int64_t>(c.code)) << c.what;
    Raw bytewise;
    bool ok = true;
    for (size_t i = 0; i < c.bytes.size() && ok; ++i) {
      ok = bytewise.Feed(std::string_view(c.bytes).substr(i, 1));
    }
    EXPECT_FALSE(ok) << c.what << " (byte by byte)";
    EXPECT_EQ(bytewise.GoawayCode(), static_cast<int64_t>(c.code)) << c.what;
  }
}

// PINGs answered while the host cannot write them out: past 64 KiB of answers the
// connection fails; answers the host took do not count.
TEST(H2ClientCodecTest, PingFloodWhileNotWritten) {
  Raw r;
  ASSERT_TRUE(r.Feed(kSettings));
  r.codec.output().clear();
  std::string pings;
  for (int i = 0; i < 1000; ++i) {
    pings += Frame(0x6, 0, 0, std::string(8, 'p'));
  }
  for (int round = 0; round < 20; ++round) {  // written out each time: 20,000 PINGs fine
    ASSERT_TRUE(r.Feed(pings)) << round;
    r.codec.output().clear();
  }
  bool ok = true;
  for (int round = 0; round < 10 && ok; ++round) {  // never written out
    ok = r.Feed(pings);
  }
  EXPECT_FALSE(ok);
  EXPECT_EQ(r.GoawayCode(), static_cast<int64_t>(H2Error::kEnhanceYourCalm));
}

// A response that breaks HTTP/2's rules resets its own stream; the connection and the other
// streams go on.
TEST(H2ClientCodecTest, MalformedResponsesResetTheirStream) {
  const std::vector<std::pair<const char*, Fields>> heads = {
      {"uppercase name", {{":status", "200"}, {"Content-Type", "a"}}},
      {"no :status", {{"content-type", "a"}}},
      {"two-digit :status", {{":status", "20"}}},
      {":status after a field", {{"content-type", "a"}, {":status", "200"}}},
      {"two :status", {{":status", "200"}, {":status", "204"}}},
      {"unknown pseudo-field", {{":status", "200"}, {":path", "/"}}},
      {"101", {{":status", "101"}}},
      {"Connection", {{":status", "200"}, {"connection", "close"}}},
      {"Transfer-Encoding", {{":status", "200"}, {"transfer-encoding", "chunked"}}},
      {"TE other than trailers", {{":status", "200"}, {"te", "gzip"}}},
      {"control character", {{":status", "200"}, {"x-a", "a\x01"}}},
      {"NUL", {{":status", "200"}, {"x-a", std::string("a\0b", 3)}}},
      {"LF", {{":status", "200"}, {"x-a", "a\nb"}}},
      {"leading space", {{":status", "200"}, {"x-a", " a"}}},
      {"two Content-Length",
       {{":status", "200"}, {"content-length", "1"}, {"content-length", "1"}}},
      {"Content-Length not a number", {{":status", "200"}, {"content-length", "1x"}}},
      {"empty name", {{":status", "200"}, {"", "a"}}},
  };
  for (const auto& [what, head] : heads) {
    Raw r;
    ASSERT_TRUE(r.Feed(kSettings + Frame(0x1, 0x4, 1, r.deflater.Block(head)))) << what;
    const auto closed = r.codec.TakeClosed();
    ASSERT_EQ(closed.size(), 1u) << what;
    EXPECT_EQ(closed[0], std::make_pair(int32_t{1}, H2Error::kProtocol)) << what;
    EXPECT_EQ(r.seen.malformed, std::vector<int32_t>{1}) << what;
    EXPECT_TRUE(r.seen.heads[1].empty()) << what;  // the host never saw the head end
    EXPECT_NE(r.codec.output().find(Frame(0x3, 0, 1, U32(0x1))), std::string::npos) << what;
    // Stream 3 is unharmed.
    ASSERT_TRUE(r.Feed(Frame(0x1, 0x5, 3, r.deflater.Block({{":status", "204"}})))) << what;
    EXPECT_EQ(r.seen.heads[3], std::vector<bool>{true}) << what;
  }
}

// A block of a few kilobytes that decodes to more than the advertised header list (table
// references to one large field): the stream is reset, its fields stop reaching the host.
TEST(H2ClientCodecTest, HeaderListBoundedAfterDecoding) {
  Raw r;
  Fields head = {{":status", "200"}};
  for (int i = 0; i < 40; ++i) {
    head.emplace_back("x-big", std::string(2000, 'b'));
  }
  const std::string block = r.deflater.Block(head);
  ASSERT_LT(block.size(), 16384u);  // the deflater indexed the field once
  ASSERT_TRUE(r.Feed(kSettings + Frame(0x1, 0x4, 1, block)));
  EXPECT_EQ(r.codec.TakeClosed()[0].second, H2Error::kProtocol);
  EXPECT_LT(r.seen.fields[1].size(), 40u);
  EXPECT_TRUE(r.seen.heads[1].empty());
}

// RFC 9113 §5.1: after the backend's END_STREAM, while torii's side of the stream is still
// open (a request body still going after a complete response), DATA or HEADERS on it are a
// stream error of type STREAM_CLOSED: the stream is reset, nothing more reaches the host, and
// the other streams go on.
TEST(H2ClientCodecTest, FramesAfterTheBackendEndedAStreamResetIt) {
  for (const bool data : {true, false}) {
    Seen seen;
    H2ClientCodec codec(seen, H2ClientCodec::Settings{});
    Deflater deflater;
    const int32_t open = codec.Open(Out(kGet), /*end_stream=*/false);  // a body follows
    const int32_t other = codec.Open(Out(kGet), /*end_stream=*/true);
    codec.output().clear();
    ASSERT_TRUE(
        codec.Receive(kSettings + Frame(0x1, 0x5, open, deflater.Block({{":status", "200"}}))));
    EXPECT_EQ(seen.heads[open], std::vector<bool>{true});
    EXPECT_TRUE(codec.TakeClosed().empty()) << "half-closed (remote), not closed";
    const std::string late =
        data ? Frame(0x0, 0x1, open, "late")
             : Frame(0x1, 0x5, open, deflater.Block({{":status", "200"}, {"x-late", "1"}}));
    ASSERT_TRUE(codec.Receive(late)) << data;
    EXPECT_NE(codec.output().find(Frame(0x3, 0, open, U32(0x5))), std::string::npos) << data;
    const auto closed = codec.TakeClosed();
    ASSERT_EQ(closed.size(), 1u) << data;
    EXPECT_EQ(closed[0], std::make_pair(open, H2Error::kStreamClosed)) << data;
    EXPECT_TRUE(seen.data[open].empty()) << data;
    EXPECT_EQ(seen.heads[open], std::vector<bool>{true}) << data;
    EXPECT_EQ(seen.fields[open].size(), 1u) << data;  // :status of the first head only
    ASSERT_TRUE(codec.Receive(Frame(0x1, 0x5, other, deflater.Block({{":status", "204"}}))));
    EXPECT_EQ(seen.heads[other], std::vector<bool>{true}) << data;
  }
}

TEST(H2ClientCodecTest, BodyRulesResetTheStream) {
  // DATA of "abc" against a Content-Length of 2 (more) and of 5 (fewer): the stream is reset
  // as malformed, and what arrived within the length reached the host.
  for (const auto& [length, delivered] : {std::pair<const char*, const char*>{"2", ""},
                                          std::pair<const char*, const char*>{"5", "abc"}}) {
    Raw r;
    ASSERT_TRUE(r.Feed(
        kSettings +
        Frame(0x1, 0x4, 1, r.deflater.Block({{":status", "200"}, {"content-length", length}})) +
        Frame(0x0, 0x1, 1, "abc")));
    EXPECT_EQ(r.codec.TakeClosed()[0].second, H2Error::kProtocol) << length;
    EXPECT_EQ(r.seen.malformed, std::vector<int32_t>{1}) << length;
    EXPECT_EQ(r.seen.data[1], delivered) << length;
    EXPECT_FALSE(r.seen.data_end[1]) << length;
  }
  {  // DATA beyond the stream's window (64 KiB), never taken: FLOW_CONTROL_ERROR on it
    Raw r;
    std::string bytes = kSettings + Frame(0x1, 0x4, 1, r.deflater.Block({{":status", "200"}}));
    for (int i = 0; i < 5; ++i) {
      bytes += Frame(0x0, 0, 1, std::string(16384, 'd'));
    }
    ASSERT_TRUE(r.Feed(bytes));
    EXPECT_EQ(r.codec.TakeClosed()[0].second, H2Error::kFlowControl);
    EXPECT_EQ(r.seen.data[1].size(), 3u * 16384);
  }
  {  // DATA before the head
    Raw r;
    ASSERT_TRUE(r.Feed(kSettings + Frame(0x0, 0x1, 1, "abc")));
    EXPECT_EQ(r.codec.TakeClosed()[0].second, H2Error::kProtocol);
    EXPECT_TRUE(r.seen.data[1].empty());
  }
  {  // an interim response that ends the stream
    Raw r;
    ASSERT_TRUE(r.Feed(kSettings + Frame(0x1, 0x5, 1, r.deflater.Block({{":status", "103"}}))));
    EXPECT_EQ(r.codec.TakeClosed()[0].second, H2Error::kProtocol);
  }
  {  // trailers that do not end the stream, and trailers with a pseudo-field
    for (const bool pseudo : {false, true}) {
      Raw r;
      ASSERT_TRUE(r.Feed(kSettings + Frame(0x1, 0x4, 1, r.deflater.Block({{":status", "200"}}))));
      Fields t = {{"grpc-status", "0"}};
      if (pseudo) {
        t.emplace_back(":status", "200");
      }
      ASSERT_TRUE(r.Feed(Frame(0x1, pseudo ? 0x5 : 0x4, 1, r.deflater.Block(t))));
      EXPECT_EQ(r.codec.TakeClosed()[0].second, H2Error::kProtocol) << pseudo;
    }
  }
  {  // padded DATA: the padding is dropped, the data delivered
    Raw r;
    ASSERT_TRUE(r.Feed(kSettings + Frame(0x1, 0x4, 1, r.deflater.Block({{":status", "200"}})) +
                       Frame(0x0, 0x9, 1,
                             std::string("\x03"
                                         "abc\0\0\0",
                                         7))));
    EXPECT_EQ(r.seen.data[1], "abc");
    EXPECT_TRUE(r.seen.data_end[1]);
  }
  {  // a 1xx, then the final head, then HEAD's Content-Length without a body
    Raw r;
    ASSERT_TRUE(r.Feed(
        kSettings + Frame(0x1, 0x4, 1, r.deflater.Block({{":status", "103"}, {"link", "</a>"}})) +
        Frame(0x1, 0x4, 1, r.deflater.Block({{":status", "200"}})) + Frame(0x0, 0x1, 1, "ok")));
    EXPECT_EQ(r.seen.heads[1], (std::vector<bool>{false, false}));
    EXPECT_EQ(r.seen.data[1], "ok");
    EXPECT_TRUE(r.seen.data_end[1]);
  }
}

}  // namespace
}  // namespace torii::http
