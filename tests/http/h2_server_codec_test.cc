// tests/http/h2_server_codec_test.cc: H2ServerCodec (http/h2_server_codec.h) against
// nghttp2's client session in memory (requests, responses, bodies both ways, flow control,
// trailers, CONTINUATION, GOAWAY, RST_STREAM, PING, the stream limit), and hostile frames
// written byte by byte: each connection error answered with its GOAWAY code, each malformed
// request with RST_STREAM PROTOCOL_ERROR on its stream alone.
#include "http/h2_server_codec.h"

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

constexpr std::string_view kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

// What the codec told its host.
struct Seen : H2Codec::Host {
  std::vector<int32_t> begun;
  std::map<int32_t, Fields> fields;
  std::map<int32_t, std::vector<bool>> heads;  // end_stream of each header block
  std::map<int32_t, std::string> data;
  std::map<int32_t, bool> data_end;
  std::vector<int32_t> malformed;
  std::vector<int32_t> resets;
  int goaways = 0;
  void OnBegin(int32_t s) override { begun.push_back(s); }
  void OnField(int32_t s, std::string_view n, std::string_view v) override {
    fields[s].emplace_back(n, v);
  }
  void OnHeaders(int32_t s, bool end) override { heads[s].push_back(end); }
  void OnData(int32_t s, std::string_view b) override { data[s].append(b); }
  void OnDataEnd(int32_t s) override { data_end[s] = true; }
  void OnGoaway() override { ++goaways; }
  void OnMalformed(int32_t s) override { malformed.push_back(s); }
  void OnReset(int32_t s) override { resets.push_back(s); }
  void OnTooLarge(int32_t s) override { too_large.push_back(s); }
  std::vector<int32_t> too_large;
};

std::vector<H2OutField> Out(const Fields& f) {
  std::vector<H2OutField> out;
  for (const auto& [n, v] : f) {
    out.push_back(H2OutField{n, v});
  }
  return out;
}

const Fields kGet = {
    {":method", "GET"}, {":scheme", "https"}, {":authority", "a.test"}, {":path", "/x"}};

H2Codec::Settings ServerSettings(uint32_t max_streams = 100, bool connect_protocol = true,
                                 uint32_t max_header_list = 16 * 1024) {
  H2Codec::Settings s;
  s.max_header_list = max_header_list;
  s.connection_window = 1 << 20;
  s.max_streams = max_streams;
  s.connect_protocol = connect_protocol;
  return s;
}

// ---- Against nghttp2's client session ----

class Client {
 public:
  struct Response {
    Fields head;
    std::vector<Fields> interim;
    std::string body;
    Fields trailers;
    bool ended = false;
    uint32_t reset = UINT32_MAX;  // RST_STREAM code, if any
  };

  Client() {
    nghttp2_session_callbacks* cbs = nullptr;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_on_header_callback(
        cbs, [](nghttp2_session*, const nghttp2_frame* f, const uint8_t* name, size_t namelen,
                const uint8_t* value, size_t valuelen, uint8_t, void* user) {
          static_cast<Client*>(user)->block_[f->hd.stream_id].emplace_back(
              std::string(reinterpret_cast<const char*>(name), namelen),
              std::string(reinterpret_cast<const char*>(value), valuelen));
          return 0;
        });
    nghttp2_session_callbacks_set_on_frame_recv_callback(
        cbs, [](nghttp2_session*, const nghttp2_frame* f, void* user) {
          auto* c = static_cast<Client*>(user);
          Response& r = c->responses[f->hd.stream_id];
          if (f->hd.type == NGHTTP2_HEADERS) {
            // A block with :status 1xx is interim, one with another :status the head, one
            // without trailers.
            Fields block = std::move(c->block_[f->hd.stream_id]);
            c->block_.erase(f->hd.stream_id);
            if (block.empty() || block[0].first != ":status") {
              r.trailers = std::move(block);
            } else if (block[0].second[0] == '1') {
              r.interim.push_back(std::move(block));
            } else {
              r.head = std::move(block);
            }
          }
          if ((f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) &&
              (f->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0) {
            r.ended = true;
          }
          if (f->hd.type == NGHTTP2_RST_STREAM) {
            r.reset = f->rst_stream.error_code;
          }
          if (f->hd.type == NGHTTP2_GOAWAY) {
            c->goaway_last = f->goaway.last_stream_id;
            c->goaway_code = f->goaway.error_code;
          }
          return 0;
        });
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(
        cbs,
        [](nghttp2_session*, uint8_t, int32_t id, const uint8_t* data, size_t len, void* user) {
          static_cast<Client*>(user)->responses[id].body.append(reinterpret_cast<const char*>(data),
                                                                len);
          return 0;
        });
    nghttp2_session_client_new(&ng, cbs, this);
    nghttp2_session_callbacks_del(cbs);
    nghttp2_submit_settings(ng, NGHTTP2_FLAG_NONE, nullptr, 0);
  }
  ~Client() { nghttp2_session_del(ng); }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // A request with `body` (ending the stream) and trailers after it when given; with
  // neither, the HEADERS end the stream.
  int32_t Request(const Fields& head, std::string body = {}, Fields trailers = {}) {
    std::vector<nghttp2_nv> nv = Nvs(head);
    if (body.empty() && trailers.empty()) {
      return nghttp2_submit_request(ng, nullptr, nv.data(), nv.size(), nullptr, nullptr);
    }
    nghttp2_data_provider p;
    p.source.ptr = this;
    p.read_callback = [](nghttp2_session* ng, int32_t id, uint8_t* buf, size_t length,
                         uint32_t* flags, nghttp2_data_source* src, void*) -> ssize_t {
      auto* c = static_cast<Client*>(src->ptr);
      auto& [b, t] = c->bodies_[id];
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
    const int32_t id = nghttp2_submit_request(ng, nullptr, nv.data(), nv.size(), &p, nullptr);
    bodies_[id] = {std::move(body), std::move(trailers)};
    return id;
  }

  nghttp2_session* ng = nullptr;
  std::map<int32_t, Response> responses;
  int32_t goaway_last = -1;
  uint32_t goaway_code = UINT32_MAX;

 private:
  std::map<int32_t, std::pair<std::string, Fields>> bodies_;
  std::map<int32_t, Fields> block_;  // the header block being received
};

struct Pair {
  explicit Pair(H2Codec::Settings settings = ServerSettings()) : codec(seen, settings) {}

  // Both ways until neither has anything to say; the server takes request bodies as they
  // come (Consume) unless `hold`.
  void Pump(bool hold = false) {
    for (int round = 0; round < 200; ++round) {
      bool moved = false;
      for (;;) {
        const uint8_t* bytes = nullptr;
        const ssize_t n = nghttp2_session_mem_send(client.ng, &bytes);
        ASSERT_GE(n, 0);
        if (n == 0) {
          break;
        }
        ASSERT_TRUE(codec.Receive(
            std::string_view(reinterpret_cast<const char*>(bytes), static_cast<size_t>(n))))
            << codec.failure();
        moved = true;
      }
      if (!hold) {
        for (auto& [id, bytes] : seen.data) {
          const size_t n = bytes.size() - taken[id];
          codec.Consume(id, n);
          taken[id] = bytes.size();
        }
      }
      std::string& out = codec.output();
      if (!out.empty()) {
        const ssize_t n = nghttp2_session_mem_recv(
            client.ng, reinterpret_cast<const uint8_t*>(out.data()), out.size());
        ASSERT_EQ(n, static_cast<ssize_t>(out.size())) << nghttp2_strerror(static_cast<int>(n));
        out.clear();
        moved = true;
      }
      if (!moved) {
        return;
      }
    }
    FAIL() << "no quiet after 200 rounds";
  }
  size_t SendBody(int32_t id, std::string_view body, bool end) {
    return SendBodyFrames(codec, id, body, end);
  }

  Seen seen;
  Client client;
  H2ServerCodec codec;
  std::map<int32_t, size_t> taken;
};

TEST(H2ServerCodecTest, RequestAndResponse) {
  Pair p;
  Fields req = kGet;
  req.emplace_back("user-agent", "t/1");
  req.emplace_back("cookie", "a=1");
  const int32_t id = p.client.Request(req);
  p.Pump();
  EXPECT_EQ(p.seen.begun, std::vector<int32_t>{id});
  EXPECT_EQ(p.seen.fields[id], req);
  EXPECT_EQ(p.seen.heads[id], std::vector<bool>{true});
  EXPECT_TRUE(p.codec.is_open(id));  // the response is still to come
  // An interim head, the final one, a body.
  ASSERT_TRUE(p.codec.SendHeaders(id, Out({{":status", "103"}, {"link", "</a>"}}), false));
  ASSERT_TRUE(p.codec.SendHeaders(
      id, Out({{":status", "200"}, {"content-type", "text/plain"}, {"x-request-id", "r1"}}),
      false));
  EXPECT_EQ(p.SendBody(id, "hello", true), 5u);
  p.Pump();
  const Client::Response& r = p.client.responses[id];
  ASSERT_EQ(r.interim.size(), 1u);
  EXPECT_EQ(r.head,
            (Fields{{":status", "200"}, {"content-type", "text/plain"}, {"x-request-id", "r1"}}));
  EXPECT_EQ(r.body, "hello");
  EXPECT_TRUE(r.ended);
  EXPECT_EQ(p.codec.TakeClosed(),
            (std::vector<std::pair<int32_t, H2Error>>{{id, H2Error::kNoError}}));
  EXPECT_FALSE(p.codec.SendHeaders(id, Out({{":status", "200"}}), true));  // closed
  EXPECT_EQ(p.codec.open_streams(), 0u);
}

TEST(H2ServerCodecTest, ManyStreamsAnsweredOutOfOrder) {
  Pair p;
  std::vector<int32_t> ids;
  for (int i = 0; i < 50; ++i) {
    Fields req = kGet;
    req[3].second = "/s" + std::to_string(i);
    ids.push_back(p.client.Request(req));
  }
  p.Pump();
  ASSERT_EQ(p.seen.begun, ids);
  // Answered last first; 122 KiB in all, past the client's 64 KiB connection window: sent
  // as its WINDOW_UPDATEs come.
  std::map<int32_t, std::string> left;
  for (size_t i = ids.size(); i-- > 0;) {
    ASSERT_TRUE(p.codec.SendHeaders(ids[i], Out({{":status", "200"}}), i == 0));
    if (i > 0) {
      left[ids[i]] = std::string(i * 100, 'b');
    }
  }
  for (int round = 0; round < 20 && !left.empty(); ++round) {
    for (auto it = left.begin(); it != left.end();) {
      it->second.erase(0, p.SendBody(it->first, it->second, true));
      it = it->second.empty() ? left.erase(it) : std::next(it);
    }
    p.Pump();
  }
  EXPECT_TRUE(left.empty());
  for (size_t i = 0; i < ids.size(); ++i) {
    EXPECT_EQ(p.client.responses[ids[i]].body.size(), i * 100) << i;
    EXPECT_TRUE(p.client.responses[ids[i]].ended) << i;
  }
  EXPECT_EQ(p.codec.TakeClosed().size(), ids.size());
}

// A 300 KiB upload: the stream's 64 KiB window holds it back until the host takes the bytes;
// a 200 KiB response waits for the client's WINDOW_UPDATEs.
TEST(H2ServerCodecTest, FlowControlBothWays) {
  Pair p;
  Fields post = kGet;
  post[0].second = "POST";
  const std::string up(300 * 1024, 'u');
  const int32_t id = p.client.Request(post, up);
  p.Pump(/*hold=*/true);
  EXPECT_EQ(p.seen.data[id].size(), 65535u);  // the initial stream window, not one byte more
  p.Pump();
  EXPECT_EQ(p.seen.data[id], up);
  EXPECT_TRUE(p.seen.data_end[id]);
  ASSERT_TRUE(p.codec.SendHeaders(id, Out({{":status", "200"}}), false));
  const std::string down(200 * 1024, 'd');
  size_t sent = p.SendBody(id, down, true);
  EXPECT_EQ(sent, 65535u);  // the client's initial windows
  for (int i = 0; i < 20 && sent < down.size(); ++i) {
    p.Pump();
    sent += p.SendBody(id, std::string_view(down).substr(sent), true);
  }
  p.Pump();
  EXPECT_EQ(p.client.responses[id].body, down);
  EXPECT_TRUE(p.client.responses[id].ended);
}

TEST(H2ServerCodecTest, TrailersBothWaysAndContinuation) {
  Pair p(ServerSettings(100, true, /*max_header_list=*/64 * 1024));
  Fields post = kGet;
  post[0].second = "POST";
  post.emplace_back("te", "trailers");
  post.emplace_back("x-big", std::string(20000, 'h'));  // past one frame: CONTINUATION
  const int32_t id = p.client.Request(post, "body", {{"grpc-status", "0"}});
  p.Pump();
  EXPECT_EQ(p.seen.fields[id].size(), post.size() + 1);  // the trailer field too
  EXPECT_EQ(p.seen.fields[id].back(), (std::pair<std::string, std::string>{"grpc-status", "0"}));
  EXPECT_EQ(p.seen.heads[id], (std::vector<bool>{false, true}));
  EXPECT_EQ(p.seen.data[id], "body");
  ASSERT_TRUE(p.codec.SendHeaders(id, Out({{":status", "200"}, {"x-big", std::string(20000, 'r')}}),
                                  false));
  p.SendBody(id, "resp", false);
  p.codec.SendTrailers(id, Out({{"grpc-status", "0"}, {"grpc-message", "ok"}}));
  p.Pump();
  const Client::Response& r = p.client.responses[id];
  EXPECT_EQ(r.head.size(), 2u);
  EXPECT_EQ(r.body, "resp");
  EXPECT_EQ(r.trailers, (Fields{{"grpc-status", "0"}, {"grpc-message", "ok"}}));
  EXPECT_TRUE(r.ended);
}

// The client resets a stream: the host hears it; the stream is closed with the client's
// code; frames for it that crossed ours are dropped; PING is answered.
TEST(H2ServerCodecTest, ClientResetAndPing) {
  Pair p;
  Fields post = kGet;
  post[0].second = "POST";
  const int32_t id = p.client.Request(post, std::string(1000, 'x'));
  p.Pump();
  nghttp2_submit_rst_stream(p.client.ng, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
  nghttp2_submit_ping(p.client.ng, NGHTTP2_FLAG_NONE, nullptr);
  p.Pump();
  EXPECT_EQ(p.seen.resets, std::vector<int32_t>{id});
  EXPECT_EQ(p.codec.TakeClosed(),
            (std::vector<std::pair<int32_t, H2Error>>{{id, H2Error::kCancel}}));
  EXPECT_FALSE(p.codec.SendHeaders(id, Out({{":status", "200"}}), true));
  // The server resets one: the client sees RST_STREAM with the code.
  const int32_t next = p.client.Request(kGet);
  p.Pump();
  p.codec.Reset(next, H2Error::kInternal);
  p.Pump();
  EXPECT_EQ(p.client.responses[next].reset, static_cast<uint32_t>(H2Error::kInternal));
}

// GOAWAY names the last stream taken; a stream opened after it is refused, the ones before it
// finish.
TEST(H2ServerCodecTest, GracefulGoaway) {
  Pair p;
  const int32_t first = p.client.Request(kGet);
  p.Pump();
  p.codec.Goaway(H2Error::kNoError);
  const std::string goaway = p.codec.output();
  p.codec.output().clear();
  // The client's next request crossed the GOAWAY (written raw: nghttp2 would not send it).
  Deflater d;
  ASSERT_TRUE(p.codec.Receive(Frame(0x1, 0x5, first + 2, d.Block(kGet))));
  EXPECT_EQ(p.seen.begun, std::vector<int32_t>{first});
  EXPECT_NE(p.codec.output().find(Frame(0x3, 0, first + 2, U32(0x7))), std::string::npos);
  EXPECT_EQ(GoawayCodeIn(goaway), 0);
  EXPECT_EQ(goaway.substr(9, 4), U32(static_cast<uint32_t>(first)));
  EXPECT_TRUE(p.codec.SendHeaders(first, Out({{":status", "204"}}), true));
  EXPECT_EQ(p.codec.open_streams(), 0u);
}

// SETTINGS_MAX_CONCURRENT_STREAMS: one stream over it before the client acknowledged the
// setting is refused; after, a connection error.
TEST(H2ServerCodecTest, StreamLimit) {
  H2ServerCodec::Settings s = ServerSettings(/*max_streams=*/2);
  Seen seen;
  H2ServerCodec codec(seen, s);
  Deflater d;
  std::string bytes = std::string(kPreface) + Frame(0x4, 0, 0, "");
  for (int32_t id : {1, 3, 5}) {
    bytes += Frame(0x1, 0x5, id, d.Block(kGet));
  }
  ASSERT_TRUE(codec.Receive(bytes));
  EXPECT_EQ(seen.begun, (std::vector<int32_t>{1, 3}));
  EXPECT_NE(codec.output().find(Frame(0x3, 0, 5, U32(0x7))), std::string::npos);
  ASSERT_TRUE(codec.Receive(Frame(0x4, 0x1, 0, "")));  // ACK of our SETTINGS
  EXPECT_FALSE(codec.Receive(Frame(0x1, 0x5, 7, d.Block(kGet))));
  EXPECT_EQ(GoawayCodeIn(codec.output()), static_cast<int64_t>(H2Error::kProtocol));
}

// ---- Hostile frames, byte by byte ----

struct Raw {
  explicit Raw(H2Codec::Settings s = ServerSettings()) : codec(seen, s) { codec.output().clear(); }
  bool Feed(std::string_view bytes) { return codec.Receive(bytes); }
  int64_t GoawayCode() { return GoawayCodeIn(codec.output()); }
  Seen seen;
  H2ServerCodec codec;
  Deflater deflater;
};

const std::string kStart = std::string(kPreface) + Frame(0x4, 0, 0, "");

struct ConnCase {
  const char* what;
  std::string bytes;
  H2Error code;
};

TEST(H2ServerCodecTest, ConnectionErrorsAnswerGoaway) {
  const std::string get = Deflater().Block(kGet);
  std::string flood = kStart + Frame(0x1, 0, 1, get);
  for (int i = 0; i < 40; ++i) {
    flood += Frame(0x9, 0, 1, "");
  }
  const std::vector<ConnCase> cases = {
      {"SETTINGS not first", std::string(kPreface) + Frame(0x6, 0, 0, std::string(8, 'p')),
       H2Error::kProtocol},
      {"frame over 16 KiB", kStart + Frame(0x0, 0, 1, std::string(16385, 'x')),
       H2Error::kFrameSize},
      {"ENABLE_PUSH 2", std::string(kPreface) + Frame(0x4, 0, 0, Setting(0x2, 2)),
       H2Error::kProtocol},
      {"INITIAL_WINDOW_SIZE 2^31",
       std::string(kPreface) + Frame(0x4, 0, 0, Setting(0x4, 0x80000000u)), H2Error::kFlowControl},
      {"PUSH_PROMISE from a client", kStart + Frame(0x5, 0x4, 1, U32(2) + get), H2Error::kProtocol},
      {"HEADERS on an even stream", kStart + Frame(0x1, 0x5, 2, get), H2Error::kProtocol},
      {"HEADERS on stream 0", kStart + Frame(0x1, 0x5, 0, get), H2Error::kProtocol},
      {"DATA on an idle stream", kStart + Frame(0x0, 0, 1, "x"), H2Error::kProtocol},
      {"RST_STREAM on an idle stream", kStart + Frame(0x3, 0, 3, U32(8)), H2Error::kProtocol},
      {"WINDOW_UPDATE on an idle stream", kStart + Frame(0x8, 0, 5, U32(1)), H2Error::kProtocol},
      {"CONTINUATION alone", kStart + Frame(0x9, 0x4, 1, get), H2Error::kProtocol},
      {"a header block interrupted",
       kStart + Frame(0x1, 0x1, 1, get) + Frame(0x6, 0, 0, std::string(8, 'p')),
       H2Error::kProtocol},
      {"CONTINUATION flood", flood, H2Error::kEnhanceYourCalm},
      {"connection window overflow", kStart + Frame(0x8, 0, 0, U32(0x7fffffff)),
       H2Error::kFlowControl},
      {"HPACK index past the tables", kStart + Frame(0x1, 0x5, 1, "\xff\x7f"),
       H2Error::kCompression},
      {"DATA past the connection window",
       [] {
         // Each stream's window is 64 KiB, the connection's 1 MiB: 17 streams' worth.
         std::string b = kStart;
         Deflater d;
         for (int32_t id = 1; id <= 33; id += 2) {
           b += Frame(0x1, 0x4, id,
                      d.Block({{":method", "POST"}, {":scheme", "https"}, {":path", "/"}}));
           for (int i = 0; i < 4; ++i) {
             b += Frame(0x0, 0, id, std::string(16383, 'd'));
           }
         }
         return b;
       }(),
       H2Error::kFlowControl},
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

TEST(H2ServerCodecTest, WrongPrefaceFailsWithoutAnswer) {
  for (const std::string& bytes :
       {std::string("GET / HTTP/1.1\r\n\r\n"), std::string(kPreface.substr(0, 10)) + "X"}) {
    Raw r;
    EXPECT_FALSE(r.Feed(bytes));
    EXPECT_TRUE(r.codec.failed());
    EXPECT_EQ(r.GoawayCode(), -1);  // not HTTP/2: nothing to say in its framing
  }
}

// A request that breaks HTTP/2's rules resets its own stream; the connection and the other
// streams go on.
TEST(H2ServerCodecTest, MalformedRequestsResetTheirStream) {
  auto with = [](Fields f, std::string name, std::string value) {
    f.emplace_back(std::move(name), std::move(value));
    return f;
  };
  auto without = [](Fields f, std::string_view name) {
    std::erase_if(f, [&](const auto& kv) { return kv.first == name; });
    return f;
  };
  auto set = [](Fields f, std::string_view name, std::string value) {
    for (auto& [n, v] : f) {
      if (n == name) {
        v = std::move(value);
      }
    }
    return f;
  };
  const Fields connect = {{":method", "CONNECT"}, {":authority", "a.test:443"}};
  const std::vector<std::pair<const char*, Fields>> heads = {
      {"uppercase name", with(kGet, "User-Agent", "a")},
      {"empty name", with(kGet, "", "a")},
      {"no :method", without(kGet, ":method")},
      {"no :path", without(kGet, ":path")},
      {"no :scheme", without(kGet, ":scheme")},
      {"empty :path", set(kGet, ":path", "")},
      {":path not absolute", set(kGet, ":path", "x/y")},
      {":path with a space", set(kGet, ":path", "/a b")},
      {"* but not OPTIONS", set(kGet, ":path", "*")},
      {"two :method", with(kGet, ":method", "GET")},
      {"pseudo-field after a field",
       Fields{{":method", "GET"}, {"x-a", "1"}, {":scheme", "https"}, {":path", "/"}}},
      {"unknown pseudo-field", with(kGet, ":status", "200")},
      {":method not a token", set(kGet, ":method", "G T")},
      {":scheme not a scheme", set(kGet, ":scheme", "1http")},
      {":authority with a slash", set(kGet, ":authority", "a/b")},
      {":protocol without CONNECT", with(kGet, ":protocol", "websocket")},
      {"CONNECT with :path", with(connect, ":path", "/")},
      {"CONNECT without :authority", Fields{{":method", "CONNECT"}}},
      {"Connection", with(kGet, "connection", "close")},
      {"Keep-Alive", with(kGet, "keep-alive", "1")},
      {"Transfer-Encoding", with(kGet, "transfer-encoding", "chunked")},
      {"TE other than trailers", with(kGet, "te", "gzip")},
      {"control character", with(kGet, "x-a", "a\x01")},
      {"NUL", with(kGet, "x-a", std::string("a\0b", 3))},
      {"CR", with(kGet, "x-a", "a\rb")},
      {"leading space", with(kGet, "x-a", " a")},
      {"two Content-Length", with(with(kGet, "content-length", "0"), "content-length", "0")},
      {"Content-Length not a number", with(kGet, "content-length", "1x")},
      {"Content-Length empty", with(kGet, "content-length", "")},
      {"Content-Length signed", with(kGet, "content-length", "+1")},
      {"Content-Length of 20 digits", with(kGet, "content-length", "99999999999999999999")},
      {"name with a space", with(kGet, "x a", "1")},
      {"name with @", with(kGet, "x@a", "1")},
      {"name with a control character", with(kGet, "x\x01a", "1")},
      {"name not ASCII", with(kGet, "x\xc3\xa9", "1")},
      {"DEL in a value", with(kGet, "x-a", "a\x7f")},
      {"trailing tab", with(kGet, "x-a", "a\t")},
      {"Content-Length and no body", with(kGet, "content-length", "3")},
  };
  for (const auto& [what, head] : heads) {
    Raw r;
    ASSERT_TRUE(r.Feed(kStart + Frame(0x1, 0x5, 1, r.deflater.Block(head)))) << what;
    const auto closed = r.codec.TakeClosed();
    ASSERT_EQ(closed.size(), 1u) << what;
    EXPECT_EQ(closed[0], std::make_pair(int32_t{1}, H2Error::kProtocol)) << what;
    EXPECT_EQ(r.seen.malformed, std::vector<int32_t>{1}) << what;
    EXPECT_TRUE(r.seen.heads[1].empty()) << what;  // the host never saw the head end
    EXPECT_NE(r.codec.output().find(Frame(0x3, 0, 1, U32(0x1))), std::string::npos) << what;
    // Stream 3 is unharmed.
    ASSERT_TRUE(r.Feed(Frame(0x1, 0x5, 3, r.deflater.Block(kGet)))) << what;
    EXPECT_EQ(r.seen.heads[3], std::vector<bool>{true}) << what;
  }
  // Well-formed: CONNECT, extended CONNECT (once enabled), OPTIONS *.
  const std::vector<std::pair<const char*, Fields>> good = {
      {"CONNECT", connect},
      {"extended CONNECT", Fields{{":method", "CONNECT"},
                                  {":protocol", "websocket"},
                                  {":scheme", "https"},
                                  {":path", "/chat"},
                                  {":authority", "a.test"}}},
      {"OPTIONS *", set(set(kGet, ":method", "OPTIONS"), ":path", "*")},
      {"TE trailers", with(kGet, "te", "trailers")},
      {"HTAB inside a value", with(kGet, "x-a", "a\tb")},
  };
  for (const auto& [what, head] : good) {
    Raw r;
    ASSERT_TRUE(r.Feed(kStart + Frame(0x1, 0x5, 1, r.deflater.Block(head)))) << what;
    EXPECT_TRUE(r.seen.malformed.empty()) << what;
    EXPECT_EQ(r.seen.heads[1], std::vector<bool>{true}) << what;
  }
  // :protocol when SETTINGS_ENABLE_CONNECT_PROTOCOL was not sent.
  Raw off(ServerSettings(100, /*connect_protocol=*/false));
  ASSERT_TRUE(off.Feed(kStart + Frame(0x1, 0x5, 1, off.deflater.Block(good[1].second))));
  EXPECT_EQ(off.seen.malformed, std::vector<int32_t>{1});
}

TEST(H2ServerCodecTest, BodyAndTrailerRulesResetTheStream) {
  const Fields post = {{":method", "POST"},
                       {":scheme", "https"},
                       {":authority", "a"},
                       {":path", "/"},
                       {"content-length", "3"}};
  struct Case {
    const char* what;
    std::string (*frames)(Deflater& d);  // after the head (stream 1, not ended)
    std::string delivered;
  };
  const std::vector<Case> cases = {
      {"more than Content-Length", [](Deflater&) { return Frame(0x0, 0x1, 1, "abcd"); }, ""},
      {"fewer than Content-Length", [](Deflater&) { return Frame(0x0, 0x1, 1, "ab"); }, "ab"},
      {"trailers before the length",
       [](Deflater& d) {
         return Frame(0x0, 0, 1, "ab") + Frame(0x1, 0x5, 1, d.Block({{"x-t", "1"}}));
       },
       "ab"},
      {"trailers without END_STREAM",
       [](Deflater& d) {
         return Frame(0x0, 0, 1, "abc") + Frame(0x1, 0x4, 1, d.Block({{"x-t", "1"}}));
       },
       "abc"},
      {"pseudo-field in trailers",
       [](Deflater& d) {
         return Frame(0x0, 0, 1, "abc") + Frame(0x1, 0x5, 1, d.Block({{":path", "/"}}));
       },
       "abc"},
  };
  for (const Case& c : cases) {
    Raw r;
    const std::string bytes =
        kStart + Frame(0x1, 0x4, 1, r.deflater.Block(post)) + c.frames(r.deflater);
    ASSERT_TRUE(r.Feed(bytes)) << c.what << ": " << r.codec.failure();
    EXPECT_EQ(r.seen.malformed, std::vector<int32_t>{1}) << c.what;
    EXPECT_EQ(r.seen.data[1], c.delivered) << c.what;
    EXPECT_FALSE(r.seen.data_end[1]) << c.what;
    const auto closed = r.codec.TakeClosed();
    ASSERT_EQ(closed.size(), 1u) << c.what;
    EXPECT_EQ(closed[0].second, H2Error::kProtocol) << c.what;
  }
}

// Frames on a stream the client ended (half-closed, remote): a stream error STREAM_CLOSED; on
// one closed here already, dropped (they crossed our RST_STREAM).
TEST(H2ServerCodecTest, FramesAfterTheClientsEndAreStreamClosed) {
  for (const bool data : {true, false}) {
    Raw r;
    const std::string get = r.deflater.Block(kGet);
    ASSERT_TRUE(r.Feed(kStart + Frame(0x1, 0x5, 1, get)));
    ASSERT_EQ(r.seen.heads[1], std::vector<bool>{true});
    const std::string late =
        data ? Frame(0x0, 0, 1, "late") : Frame(0x1, 0x5, 1, r.deflater.Block({{"x-t", "1"}}));
    ASSERT_TRUE(r.Feed(late));
    EXPECT_EQ(r.codec.TakeClosed(),
              (std::vector<std::pair<int32_t, H2Error>>{{1, H2Error::kStreamClosed}}));
    EXPECT_NE(r.codec.output().find(Frame(0x3, 0, 1, U32(0x5))), std::string::npos);
    EXPECT_TRUE(r.seen.data[1].empty());
    r.codec.output().clear();
    ASSERT_TRUE(r.Feed(Frame(0x0, 0, 1, "later")));  // closed now: dropped, no answer
    EXPECT_TRUE(r.codec.output().empty() ||
                r.codec.output().find(Frame(0x3, 0, 1, U32(0x5))) == std::string::npos);
  }
}

// A block of a few kilobytes that decodes to more than the advertised header list (table
// references to one large field): the host hears it once, the fields past the bound stop
// reaching it, and the head still ends (the host answers 431; the table stays in step).
TEST(H2ServerCodecTest, HeaderListBoundedAfterDecoding) {
  Raw r;
  Fields head = kGet;
  for (int i = 0; i < 40; ++i) {
    head.emplace_back("x-big", std::string(2000, 'b'));
  }
  const std::string block = r.deflater.Block(head);
  ASSERT_LT(block.size(), 16384u);  // the deflater indexed the field once
  ASSERT_TRUE(r.Feed(kStart + Frame(0x1, 0x5, 1, block)));
  EXPECT_EQ(r.seen.too_large, std::vector<int32_t>{1});
  EXPECT_LT(r.seen.fields[1].size(), 14u);  // 16 KiB: seven 2 KiB fields and the pseudo ones
  EXPECT_EQ(r.seen.heads[1], std::vector<bool>{true});
  // The next request on the connection decodes as it should.
  ASSERT_TRUE(r.Feed(Frame(0x1, 0x5, 3, r.deflater.Block(kGet))));
  EXPECT_EQ(r.seen.fields[3], kGet);
}

// SETTINGS that repeat INITIAL_WINDOW_SIZE: the last value holds (one pass over the streams
// per frame, however many entries).
TEST(H2ServerCodecTest, RepeatedInitialWindowSize) {
  Raw r;
  ASSERT_TRUE(r.Feed(kStart + Frame(0x1, 0x5, 1, r.deflater.Block(kGet))));
  std::string settings;
  for (uint32_t i = 0; i < 2000; ++i) {
    settings += Setting(0x4, 1000 + i);
  }
  settings += Setting(0x4, 100);
  ASSERT_TRUE(r.Feed(Frame(0x4, 0, 0, settings)));
  EXPECT_EQ(r.codec.Sendable(1), 100u);
}

// Padded HEADERS and DATA: the padding is taken out.
TEST(H2ServerCodecTest, PaddedFrames) {
  Raw r;
  const Fields post = {
      {":method", "POST"}, {":scheme", "https"}, {":authority", "a"}, {":path", "/"}};
  const std::string block = r.deflater.Block(post);
  std::string bytes = kStart + Frame(0x1, 0x4 | 0x8, 1, std::string(1, '\x03') + block + "ppp");
  bytes += Frame(0x0, 0x8, 1, std::string(1, '\x05') + "body" + std::string(5, '\0'));
  bytes += Frame(0x0, 0x1 | 0x8, 1, std::string(1, '\x00') + "!");
  ASSERT_TRUE(r.Feed(bytes)) << r.codec.failure();
  EXPECT_EQ(r.seen.fields[1], post);
  EXPECT_EQ(r.seen.data[1], "body!");
  EXPECT_TRUE(r.seen.data_end[1]);
  // Padding longer than its frame: a connection error.
  ASSERT_TRUE(r.Feed(Frame(0x1, 0x4, 3, r.deflater.Block(post))));
  EXPECT_FALSE(r.Feed(Frame(0x0, 0x8, 3, std::string(1, '\x09') + "x")));
  EXPECT_EQ(r.GoawayCode(), static_cast<int64_t>(H2Error::kProtocol));
}

// PINGs answered while the host cannot write them out: past 64 KiB of answers the connection
// fails; answers the host took do not count.
TEST(H2ServerCodecTest, PingFloodWhileNotWritten) {
  Raw r;
  ASSERT_TRUE(r.Feed(kStart));
  r.codec.output().clear();
  std::string pings;
  for (int i = 0; i < 1000; ++i) {
    pings += Frame(0x6, 0, 0, std::string(8, 'p'));
  }
  for (int round = 0; round < 20; ++round) {
    ASSERT_TRUE(r.Feed(pings)) << round;
    r.codec.output().clear();
  }
  bool ok = true;
  for (int round = 0; round < 10 && ok; ++round) {
    ok = r.Feed(pings);
  }
  EXPECT_FALSE(ok);
  EXPECT_EQ(r.GoawayCode(), static_cast<int64_t>(H2Error::kEnhanceYourCalm));
}

// Receive with an output limit stops at the start of the first frame after the codec's answers
// passed it; the rest, given again once the answers are taken, is answered in turn.
TEST(H2ServerCodecTest, OutputLimitStopsAtAFrameStart) {
  Raw r;
  ASSERT_TRUE(r.Feed(kStart));
  r.codec.output().clear();
  const std::string ping = Frame(0x6, 0, 0, std::string(8, 'p'));  // answered with 17 bytes
  std::string pings;
  for (int i = 0; i < 10; ++i) {
    pings += ping;
  }
  size_t taken = 0;
  ASSERT_TRUE(r.codec.Receive(pings, 40, &taken));
  EXPECT_EQ(taken, 3 * ping.size());  // 51 bytes of answers after the third
  EXPECT_EQ(r.codec.output().size(), 51u);
  // Nothing is taken while the answers wait, not even part of a frame.
  ASSERT_TRUE(r.codec.Receive(std::string_view(pings).substr(taken, 5), 40, &taken));
  EXPECT_EQ(taken, 0u);
  r.codec.output().clear();
  size_t total = 3 * ping.size();
  ASSERT_TRUE(r.codec.Receive(std::string_view(pings).substr(total, 5), 40, &taken));
  EXPECT_EQ(taken, 5u);  // a frame begun before the limit is read to its end
  total += taken;
  size_t answered = 3 * 17;
  while (total < pings.size()) {
    answered += r.codec.output().size();
    r.codec.output().clear();
    ASSERT_TRUE(r.codec.Receive(std::string_view(pings).substr(total), 40, &taken));
    ASSERT_GT(taken, 0u);
    EXPECT_LE(r.codec.output().size(), 40u + 17u);
    total += taken;
  }
  answered += r.codec.output().size();
  EXPECT_EQ(answered, 17u * 10);  // each PING answered once
  // Without a limit (the plain Receive) everything is taken.
  r.codec.output().clear();
  ASSERT_TRUE(r.Feed(pings));
  EXPECT_EQ(r.codec.output().size(), 17u * 10);
}

// Our first frames: SETTINGS with the stream limit, the header list, no push, no RFC 7540
// priorities, extended CONNECT when enabled; the connection window raised to 1 MiB.
TEST(H2ServerCodecTest, ServerSettingsAreSent) {
  Seen seen;
  H2ServerCodec codec(seen, ServerSettings(7));
  const std::string& out = codec.output();
  ASSERT_GE(out.size(), 9u + 30 + 13);
  EXPECT_EQ(out.substr(0, 9), Frame(0x4, 0, 0, std::string(30, '\0')).substr(0, 9));
  const std::string settings = out.substr(9, 30);
  EXPECT_NE(settings.find(Setting(0x3, 7)), std::string::npos);
  EXPECT_NE(settings.find(Setting(0x6, 16 * 1024)), std::string::npos);
  EXPECT_NE(settings.find(Setting(0x2, 0)), std::string::npos);
  EXPECT_NE(settings.find(Setting(0x9, 1)), std::string::npos);
  EXPECT_NE(settings.find(Setting(0x8, 1)), std::string::npos);
  EXPECT_EQ(out.substr(39), Frame(0x8, 0, 0, U32((1 << 20) - 65535)));
}

// H2ValidName looks at eight bytes at a time: every byte value, at every position of names of
// 1 to 24 bytes (a short name, whole words, an overlapping last word), among lowercase letters,
// among '-' and among '~' (a tchar outside the whole-word test), agrees with the byte-by-byte
// rule: a tchar and not an uppercase letter.
TEST(H2ValidName, EveryByteEveryPosition) {
  const std::string_view tchars = "!#$%&'*+-.^_`|~";
  for (char fill : {'a', '-', '~'}) {
    for (size_t len = 1; len <= 24; ++len) {
      for (size_t at = 0; at < len; ++at) {
        for (int b = 0; b < 256; ++b) {
          std::string n(len, fill);
          n[at] = static_cast<char>(b);
          const bool valid = (b >= 'a' && b <= 'z') || (b >= '0' && b <= '9') ||
                             tchars.find(static_cast<char>(b)) != std::string_view::npos;
          ASSERT_EQ(H2ValidName(n), valid) << "len " << len << " at " << at << " byte " << b;
        }
      }
    }
  }
  EXPECT_FALSE(H2ValidName(""));
}

}  // namespace
}  // namespace torii::http
