// tests/http/h1_parser_test.cc: llhttp in strict mode plus torii's own checks (http/h1_parser.cc)
// on byte strings, no sockets. The rows named here (S1..S17, C1..C7, R1..R4, R9..R12, B7..B9)
// are those of BAD-INPUTS.md; the checks of its section "llhttp 8.1.0: what torii must add"
// (§2 requests, §3 responses) each have a test. The driver mimics the session glue: it keeps
// one growing buffer, erases the consumed prefix whenever the parser is outside a head, and
// copies the head out as soon as it is reported.
#include "http/h1_parser.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace torii::http {
namespace {

using namespace std::string_literals;
using Event = H1Parser::Event;
using Kind = H1Parser::Kind;
using Limits = H1Parser::Limits;

const std::string kSmuggled = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";

struct OwnedHead {
  std::string method;
  std::string target;
  uint16_t status = 0;
  std::string reason;
  uint8_t version_minor = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  Framing framing = Framing::kNone;
  uint64_t content_length = 0;
  bool keep_alive = false;
  bool upgrade = false;

  int Count(std::string_view name) const {
    return static_cast<int>(std::count_if(headers.begin(), headers.end(), [&](const auto& h) {
      return EqualsIgnoreCase(h.first, name);
    }));
  }
  std::optional<std::string> Get(std::string_view name) const {
    for (const auto& [n, v] : headers) {
      if (EqualsIgnoreCase(n, name)) {
        return v;
      }
    }
    return std::nullopt;
  }
};

OwnedHead Own(const MessageHead& h) {
  OwnedHead o;
  o.method = std::string(h.method);
  o.target = std::string(h.target);
  o.status = h.status;
  o.reason = std::string(h.reason);
  o.version_minor = h.version_minor;
  for (const HeaderView& hv : h.headers) {
    o.headers.emplace_back(std::string(hv.name), std::string(hv.value));
  }
  o.framing = h.framing;
  o.content_length = h.content_length;
  o.keep_alive = h.keep_alive;
  o.upgrade = h.upgrade;
  return o;
}

struct Message {
  std::vector<Event> events;
  OwnedHead head;
  std::string body;
  std::vector<std::pair<std::string, std::string>> trailers;
  bool must_close = false;
};

// The session glue in miniature.
class Driver {
 public:
  explicit Driver(Kind kind, const Limits& limits = Limits{}) : parser_(kind, limits) {}

  // Appends `bytes` and runs the parser until it needs more input or fails. With
  // `stop_after_done`, returns right after one message completes.
  void Feed(std::string_view bytes, bool stop_after_done = false) {
    buf_.append(bytes);
    Run(stop_after_done);
  }

  void Run(bool stop_after_done = false) {
    for (int guard = 0; guard < 100000; ++guard) {
      if (error_ != 0) {
        return;
      }
      const H1Parser::Step step = parser_.Next(buf_.data(), buf_.size());
      cur_.events.push_back(step.event);
      switch (step.event) {
        case Event::kNeedMore:
          cur_.events.pop_back();  // not interesting, and it repeats
          if (!parser_.in_head()) {
            Compact();
          }
          return;
        case Event::kError:
          error_ = parser_.error_status();
          reason_ = parser_.error_reason();
          return;
        case Event::kHead:
          cur_.head = Own(parser_.head());
          Compact();
          break;
        case Event::kBody:
          cur_.body.append(step.body);
          Compact();
          break;
        case Event::kDone:
          cur_.must_close = parser_.must_close();
          for (const HeaderView& t : parser_.trailers()) {
            cur_.trailers.emplace_back(std::string(t.name), std::string(t.value));
          }
          done_.push_back(std::move(cur_));
          cur_ = Message{};
          Compact();
          if (stop_after_done) {
            return;
          }
          break;
      }
    }
    ADD_FAILURE() << "parser loops without progress";
  }

  H1Parser::Step Finish() {
    const H1Parser::Step step = parser_.Finish();
    if (step.event == Event::kDone) {
      cur_.events.push_back(Event::kDone);
      cur_.must_close = parser_.must_close();
      done_.push_back(std::move(cur_));
      cur_ = Message{};
    } else if (step.event == Event::kError) {
      error_ = parser_.error_status();
      reason_ = parser_.error_reason();
    }
    return step;
  }

  H1Parser& parser() { return parser_; }
  const std::vector<Message>& done() const { return done_; }
  const Message& current() const { return cur_; }
  int error() const { return error_; }
  const std::string& reason() const { return reason_; }
  const std::string& buffer() const { return buf_; }

 private:
  void Compact() {
    buf_.erase(0, parser_.consumed());
    parser_.DropConsumed();
  }

  H1Parser parser_;
  std::string buf_;
  std::vector<Message> done_;
  Message cur_;
  int error_ = 0;
  std::string reason_;
};

// Parses `input` as requests fed at once; returns the driver for inspection.
std::unique_ptr<Driver> Req(std::string_view input, const Limits& limits = Limits{}) {
  auto d = std::make_unique<Driver>(Kind::kRequest, limits);
  d->Feed(input);
  return d;
}

// The error status a request gets (0 when none so far).
int ReqStatus(std::string_view input, const Limits& limits = Limits{}) {
  return Req(input, limits)->error();
}

std::unique_ptr<Driver> Resp(std::string_view input, bool request_was_head = false) {
  auto d = std::make_unique<Driver>(Kind::kResponse, Limits{});
  d->parser().set_request_was_head(request_was_head);
  d->Feed(input);
  return d;
}

std::string Printable(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (c >= 0x20 && c < 0x7F) {
      out.push_back(static_cast<char>(c));
    } else {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", c);
      out += buf;
    }
  }
  return out;
}

std::string PostHead(std::string_view framing_headers) {
  return "POST /upload HTTP/1.1\r\nHost: a\r\n" + std::string(framing_headers) + "\r\n";
}

// ============================================================================================
// Well-formed requests

// A plain GET yields kHead then kDone, with method, target, version and headers as sent
// (values trimmed of OWS) and no body.
TEST(H1RequestTest, SimpleGet) {
  auto d =
      Req("GET /a/b?c=d HTTP/1.1\r\nHost: example.com\r\nX-Foo:  bar \t\r\nAccept: */*\r\n\r\n");
  ASSERT_EQ(d->error(), 0) << d->reason();
  ASSERT_EQ(d->done().size(), 1u);
  const Message& m = d->done()[0];
  EXPECT_EQ(m.events, (std::vector<Event>{Event::kHead, Event::kDone}));
  EXPECT_EQ(m.head.method, "GET");
  EXPECT_EQ(m.head.target, "/a/b?c=d");
  EXPECT_EQ(m.head.version_minor, 1);
  ASSERT_EQ(m.head.headers.size(), 3u);
  EXPECT_EQ(m.head.headers[0], std::make_pair("Host"s, "example.com"s));
  EXPECT_EQ(m.head.headers[1], std::make_pair("X-Foo"s, "bar"s));
  EXPECT_EQ(m.head.framing, Framing::kNone);
  EXPECT_TRUE(m.head.keep_alive);
  EXPECT_FALSE(m.must_close);
  EXPECT_TRUE(m.body.empty());
  EXPECT_TRUE(d->buffer().empty()) << "all bytes consumed";
}

// A POST with Content-Length yields its body exactly, then kDone.
TEST(H1RequestTest, ContentLengthBody) {
  auto d = Req(PostHead("Content-Length: 11\r\n") + "hello world");
  ASSERT_EQ(d->error(), 0) << d->reason();
  ASSERT_EQ(d->done().size(), 1u);
  const Message& m = d->done()[0];
  EXPECT_EQ(m.head.framing, Framing::kContentLength);
  EXPECT_EQ(m.head.content_length, 11u);
  EXPECT_EQ(m.body, "hello world");
  EXPECT_EQ(m.events.front(), Event::kHead);
  EXPECT_EQ(m.events.back(), Event::kDone);
}

// Content-Length: 0 is a request without a body.
TEST(H1RequestTest, ContentLengthZeroHasNoBody) {
  auto d = Req(PostHead("Content-Length: 0\r\n"));
  ASSERT_EQ(d->done().size(), 1u);
  EXPECT_EQ(d->done()[0].head.framing, Framing::kNone);
  EXPECT_EQ(d->done()[0].events, (std::vector<Event>{Event::kHead, Event::kDone}));
}

// A chunked body is decoded: the spans concatenate to the payload without sizes or CRLFs.
TEST(H1RequestTest, ChunkedBodyDecoded) {
  auto d = Req(PostHead("Transfer-Encoding: chunked\r\n") +
               "5\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\n\r\n");
  ASSERT_EQ(d->error(), 0) << d->reason();
  ASSERT_EQ(d->done().size(), 1u);
  EXPECT_EQ(d->done()[0].head.framing, Framing::kChunked);
  EXPECT_EQ(d->done()[0].body, "hello world");
}

// S8: Transfer-Encoding tokens are case-insensitive: CHUNKED is chunked.
TEST(H1RequestTest, S8_ChunkedIsCaseInsensitive) {
  auto d = Req(PostHead("Transfer-Encoding: CHUNKED\r\n") + "2\r\nok\r\n0\r\n\r\n");
  ASSERT_EQ(d->error(), 0) << d->reason();
  ASSERT_EQ(d->done().size(), 1u);
  EXPECT_EQ(d->done()[0].body, "ok");
}

// S6: Content-Length with leading zeros is parsed as its value (0002 → 2).
TEST(H1RequestTest, S6_LeadingZeroContentLength) {
  auto d = Req(PostHead("Content-Length: 0002\r\n") + "ab" + kSmuggled);
  ASSERT_EQ(d->error(), 0) << d->reason();
  ASSERT_GE(d->done().size(), 1u);
  EXPECT_EQ(d->done()[0].head.content_length, 2u);
  EXPECT_EQ(d->done()[0].body, "ab");
}

// R2: HTTP/1.2 is accepted and treated as HTTP/1.1.
TEST(H1RequestTest, R2_Http12AcceptedAs11) {
  auto d = Req("GET / HTTP/1.2\r\nHost: a\r\n\r\n");
  ASSERT_EQ(d->error(), 0) << d->reason();
  ASSERT_EQ(d->done().size(), 1u);
  EXPECT_EQ(d->done()[0].head.version_minor, 1);
  // Also one byte at a time, and for a second (pipelined) request on the same parser.
  Driver bytes(Kind::kRequest);
  for (char c : "GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.9\r\nHost: a\r\n\r\n"s) {
    bytes.Feed(std::string_view(&c, 1));
  }
  ASSERT_EQ(bytes.error(), 0) << bytes.reason();
  ASSERT_EQ(bytes.done().size(), 2u);
  EXPECT_EQ(bytes.done()[1].head.target, "/2");
  EXPECT_EQ(bytes.done()[1].head.version_minor, 1);
}

// HTTP/1.0 without keep-alive, and Connection: close, make must_close true after kDone.
TEST(H1RequestTest, MustCloseAfterCloseOr10) {
  auto d = Req("GET / HTTP/1.0\r\n\r\n");
  ASSERT_EQ(d->done().size(), 1u);
  EXPECT_EQ(d->done()[0].head.version_minor, 0);
  EXPECT_TRUE(d->done()[0].must_close);
  d = Req("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  ASSERT_EQ(d->done().size(), 1u);
  EXPECT_FALSE(d->done()[0].must_close);
  d = Req("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
  ASSERT_EQ(d->done().size(), 1u);
  EXPECT_TRUE(d->done()[0].must_close);
  EXPECT_FALSE(d->done()[0].head.keep_alive);
}

// An Upgrade request completes, with must_close (torii does not tunnel), and the bytes after
// its head (P3) stay unconsumed: never parsed as the body or as a request.
TEST(H1RequestTest, UpgradeRequestMustClose) {
  Driver d(Kind::kRequest);
  d.Feed("GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n" +
             kSmuggled,
         /*stop_after_done=*/true);
  ASSERT_EQ(d.error(), 0) << d.reason();
  ASSERT_EQ(d.done().size(), 1u);
  EXPECT_TRUE(d.done()[0].head.upgrade);
  EXPECT_TRUE(d.done()[0].must_close);
  EXPECT_EQ(d.done()[0].events, (std::vector<Event>{Event::kHead, Event::kDone}));
  EXPECT_TRUE(d.done()[0].body.empty());
  EXPECT_EQ(d.buffer(), kSmuggled);
}

// C7: trailers are never merged into the head, whatever they carry (Content-Length, Host,
// Authorization, anything else); they are kept apart (what passes on is serialize.h's call),
// and the message completes normally.
TEST(H1RequestTest, C7_TrailersNotInHeaders) {
  auto d = Req(PostHead("Transfer-Encoding: chunked\r\n") +
               "2\r\nok\r\n0\r\nContent-Length: 50\r\nHost: evil\r\nAuthorization: x\r\n"
               "X-Trailer: 1\r\n\r\n");
  ASSERT_EQ(d->error(), 0) << d->reason();
  ASSERT_EQ(d->done().size(), 1u);
  const OwnedHead& h = d->done()[0].head;
  EXPECT_EQ(d->done()[0].body, "ok");
  EXPECT_EQ(h.Count("content-length"), 0);
  EXPECT_EQ(h.Count("authorization"), 0);
  EXPECT_EQ(h.Count("x-trailer"), 0);
  EXPECT_EQ(h.Count("host"), 1);
  EXPECT_EQ(h.Get("host"), "a");
  EXPECT_EQ(h.Count("transfer-encoding"), 1);
  using Fields = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(
      d->done()[0].trailers,
      (Fields{
          {"Content-Length", "50"}, {"Host", "evil"}, {"Authorization", "x"}, {"X-Trailer", "1"}}));
}

// Trailer fields: values trimmed of OWS, kept apart per message (the next message starts with
// none), whole when they arrive a byte at a time.
TEST(H1RequestTest, TrailersPerMessageAndByteAtATime) {
  using Fields = std::vector<std::pair<std::string, std::string>>;
  const std::string msg = PostHead("Transfer-Encoding: chunked\r\n") +
                          "2\r\nok\r\n0\r\nX-Sum:  abc \t\r\nGrpc-Status: 0\r\n\r\n" +
                          PostHead("Transfer-Encoding: chunked\r\n") + "1\r\nz\r\n0\r\n\r\n";
  Driver d(Kind::kRequest);
  for (char c : msg) {
    d.Feed(std::string_view(&c, 1));
  }
  ASSERT_EQ(d.error(), 0) << d.reason();
  ASSERT_EQ(d.done().size(), 2u);
  EXPECT_EQ(d.done()[0].trailers, (Fields{{"X-Sum", "abc"}, {"Grpc-Status", "0"}}));
  EXPECT_EQ(d.done()[1].body, "z");
  EXPECT_TRUE(d.done()[1].trailers.empty());
}

// Trailer sections are bounded as heads are, and checked as header fields are.
TEST(H1RequestTest, TrailersBoundedAndChecked) {
  Limits small;
  small.header_bytes = 64;
  small.header_count = 3;
  const std::string head = PostHead("Transfer-Encoding: chunked\r\n") + "2\r\nok\r\n0\r\n";
  EXPECT_EQ(Req(head + "X-Big: " + std::string(80, 'v') + "\r\n\r\n", small)->error(), 431);
  EXPECT_EQ(Req(head + "A: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n", small)->error(), 400);
  EXPECT_EQ(Req(head + "A: 1\r\nB: 2\r\nC: 3\r\n\r\n", small)->error(), 0);
  EXPECT_EQ(Req(head + "X-Bad: a\x01"
                       "b\r\n\r\n")
                ->error(),
            400);
  EXPECT_EQ(Req(head + "X-Bad: a\0b\r\n\r\n"s)->error(), 400);
  const int bad_name = Req(head + "X Bad: 1\r\n\r\n")->error();
  EXPECT_EQ(bad_name, 400);
}

// C7: a Transfer-Encoding trailer never reaches the head: the trailer is dropped (the message
// completes, the head unchanged) or the request is refused with 400; it is not a 501 "Not
// Implemented" (that status is for a coding in the head).
TEST(H1RequestTest, C7_TransferEncodingTrailerDroppedOrRefused) {
  auto d = Req(PostHead("Transfer-Encoding: chunked\r\n") +
               "2\r\nok\r\n0\r\nTransfer-Encoding: chunked\r\n\r\n");
  if (d->error() != 0) {
    EXPECT_EQ(d->error(), 400) << d->reason();
    EXPECT_TRUE(d->done().empty());
    return;
  }
  ASSERT_EQ(d->done().size(), 1u);
  EXPECT_EQ(d->done()[0].body, "ok");
  EXPECT_EQ(d->done()[0].head.Count("transfer-encoding"), 1);
}

// Pipelined requests are parsed one at a time: kDone stops at the end of the first message
// (consumed() is exactly its length); after the caller erases it, the next Next() starts the
// next message.
TEST(H1RequestTest, PipelinedOneAtATimeWithDropConsumed) {
  const std::string r1 = "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n";
  const std::string r2 = PostHead("Content-Length: 3\r\n") + "abc";
  const std::string r3 = "GET /3 HTTP/1.1\r\nHost: a\r\n\r\n";
  std::string buf = r1 + r2 + r3;
  H1Parser p(Kind::kRequest, Limits{});

  H1Parser::Step s = p.Next(buf.data(), buf.size());
  ASSERT_EQ(s.event, Event::kHead);
  EXPECT_EQ(p.head().target, "/1");
  s = p.Next(buf.data(), buf.size());
  ASSERT_EQ(s.event, Event::kDone);
  EXPECT_EQ(p.consumed(), r1.size());
  buf.erase(0, p.consumed());
  p.DropConsumed();

  s = p.Next(buf.data(), buf.size());
  ASSERT_EQ(s.event, Event::kHead);
  EXPECT_EQ(p.head().target, "/upload");
  std::string body;
  for (;;) {
    s = p.Next(buf.data(), buf.size());
    if (s.event != Event::kBody) {
      break;
    }
    body.append(s.body);
  }
  ASSERT_EQ(s.event, Event::kDone);
  EXPECT_EQ(body, "abc");
  EXPECT_EQ(p.consumed(), r2.size());
  buf.erase(0, p.consumed());
  p.DropConsumed();

  s = p.Next(buf.data(), buf.size());
  ASSERT_EQ(s.event, Event::kHead);
  EXPECT_EQ(p.head().target, "/3");
  s = p.Next(buf.data(), buf.size());
  ASSERT_EQ(s.event, Event::kDone);
  EXPECT_EQ(p.consumed(), buf.size());
  s = p.Next(buf.data(), buf.size());
  EXPECT_EQ(s.event, Event::kNeedMore);
}

// Pipelined requests also parse when the caller never erases (offsets keep growing).
TEST(H1RequestTest, PipelinedWithoutErasing) {
  std::string buf;
  for (int i = 0; i < 5; ++i) {
    buf += "GET /" + std::to_string(i) + " HTTP/1.1\r\nHost: a\r\n\r\n";
  }
  H1Parser p(Kind::kRequest, Limits{});
  std::vector<std::string> targets;
  for (int guard = 0; guard < 100; ++guard) {
    const H1Parser::Step s = p.Next(buf.data(), buf.size());
    if (s.event == Event::kHead) {
      targets.emplace_back(p.head().target);
    } else if (s.event == Event::kNeedMore || s.event == Event::kError) {
      break;
    }
  }
  EXPECT_EQ(targets, (std::vector<std::string>{"/0", "/1", "/2", "/3", "/4"}));
  EXPECT_EQ(p.error_status(), 0);
}

// A head fed one byte at a time (a Next() per byte) gives the same head as fed at once, and
// body spans fed byte by byte concatenate to the body (Content-Length and chunked).
TEST(H1RequestTest, ByteAtATimeGivesSameHeadAndBody) {
  const std::string cl_req =
      "POST /p?q=1 HTTP/1.1\r\nHost: example.com\r\nX-Long: " + std::string(300, 'v') +
      "\r\nContent-Length: 10\r\n\r\n0123456789";
  const std::string chunked_req =
      "PUT /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
      "\r\n3;ext=1\r\nabc\r\nA\r\n0123456789\r\n0\r\nT: x\r\n\r\n";
  for (const std::string& req : {cl_req, chunked_req}) {
    auto whole = Req(req);
    ASSERT_EQ(whole->error(), 0) << whole->reason();
    ASSERT_EQ(whole->done().size(), 1u);
    Driver d(Kind::kRequest);
    for (char c : req) {
      d.Feed(std::string_view(&c, 1));
    }
    ASSERT_EQ(d.error(), 0) << d.reason();
    ASSERT_EQ(d.done().size(), 1u);
    const OwnedHead& a = whole->done()[0].head;
    const OwnedHead& b = d.done()[0].head;
    EXPECT_EQ(a.method, b.method);
    EXPECT_EQ(a.target, b.target);
    EXPECT_EQ(a.headers, b.headers);
    EXPECT_EQ(a.framing, b.framing);
    EXPECT_EQ(a.content_length, b.content_length);
    EXPECT_EQ(whole->done()[0].body, d.done()[0].body);
  }
  EXPECT_EQ(Req(cl_req)->done()[0].body, "0123456789");
  EXPECT_EQ(Req(chunked_req)->done()[0].body, "abc0123456789");
}

// A large Content-Length body arriving in uneven pieces concatenates exactly.
TEST(H1RequestTest, LargeBodyInPiecesConcatenates) {
  std::string payload;
  for (int i = 0; i < 100000; ++i) {
    payload.push_back(static_cast<char>('a' + i % 26));
  }
  const std::string req = PostHead("Content-Length: 100000\r\n") + payload;
  Driver d(Kind::kRequest);
  size_t off = 0;
  size_t step = 1;
  while (off < req.size()) {
    const size_t n = std::min(step, req.size() - off);
    d.Feed(std::string_view(req).substr(off, n));
    off += n;
    step = step * 3 % 7919 + 1;
  }
  ASSERT_EQ(d.error(), 0) << d.reason();
  ASSERT_EQ(d.done().size(), 1u);
  EXPECT_TRUE(d.done()[0].body == payload);
}

// ============================================================================================
// Request framing and smuggling (S rows)

// S1/S2: Content-Length together with Transfer-Encoding (either order) → 400.
TEST(H1RequestTest, S1_S2_ContentLengthWithTransferEncoding) {
  EXPECT_EQ(ReqStatus(PostHead("Content-Length: 4\r\nTransfer-Encoding: chunked\r\n") +
                      "0\r\n\r\n" + kSmuggled),
            400);
  EXPECT_EQ(ReqStatus(PostHead("Transfer-Encoding: chunked\r\nContent-Length: 4\r\n") +
                      "0\r\n\r\n" + kSmuggled),
            400);
  // Also when Content-Length is 0.
  EXPECT_EQ(
      ReqStatus(PostHead("Transfer-Encoding: chunked\r\nContent-Length: 0\r\n") + "0\r\n\r\n"),
      400);
}

// S3/S4: two Content-Length headers (different or identical) or a list value → 400.
TEST(H1RequestTest, S3_S4_DuplicateContentLength) {
  EXPECT_EQ(ReqStatus(PostHead("Content-Length: 4\r\nContent-Length: 5\r\n") + "abcde"), 400);
  EXPECT_EQ(ReqStatus(PostHead("Content-Length: 2\r\nContent-Length: 2\r\n") + "ab"), 400);
  EXPECT_EQ(ReqStatus(PostHead("Content-Length: 2, 2\r\n") + "ab"), 400);
}

// S5: malformed Content-Length values → 400.
TEST(H1RequestTest, S5_MalformedContentLength) {
  for (const char* v : {"", "+2", "-2", "0x2", "1 0", "1_0", "2a", "123456789012345678901",
                        "99999999999999999999", "1,"}) {
    EXPECT_EQ(ReqStatus(PostHead("Content-Length: "s + v + "\r\n") + "ab"), 400)
        << "Content-Length: '" << v << "'";
  }
}

// S7: Transfer-Encoding other than exactly "chunked" (malformed lists, chunked not alone,
// parameters, leading CTLs, two headers, unknown codings) is refused with 400 or 501; a
// coding torii knows but does not implement (gzip) is 501.
TEST(H1RequestTest, S7_TransferEncodingVariants) {
  const std::vector<std::string> variants = {"chunked, chunked",
                                             "chunked, gzip",
                                             "chunked;x=y",
                                             ", chunked",
                                             "chunked,",
                                             "\x0b"
                                             "chunked",
                                             "\x0c"
                                             "chunked",
                                             "\x00"
                                             "chunked"s,
                                             "chunked\x00"s,
                                             "chunk ed",
                                             "\"chunked\"",
                                             "xchunked",
                                             "identity",
                                             "gzip, chunked",
                                             "foo"};
  for (const std::string& v : variants) {
    const int st = ReqStatus(PostHead("Transfer-Encoding: " + v + "\r\n") + "2\r\nok\r\n0\r\n\r\n");
    EXPECT_TRUE(st == 400 || st == 501) << "Transfer-Encoding: '" << Printable(v) << "' → " << st;
  }
  // Two Transfer-Encoding headers, even both "chunked".
  const int two =
      ReqStatus(PostHead("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n") +
                "2\r\nok\r\n0\r\n\r\n");
  EXPECT_TRUE(two == 400 || two == 501) << two;
  EXPECT_EQ(ReqStatus(PostHead("Transfer-Encoding: gzip\r\n")), 501);
}

// S9: Transfer-Encoding split by obs-fold (with a Content-Length and a smuggled request) → 400.
TEST(H1RequestTest, S9_TransferEncodingObsFold) {
  EXPECT_EQ(ReqStatus(PostHead("Transfer-Encoding:\r\n chunked\r\nContent-Length: 4\r\n") +
                      "0\r\n\r\n" + kSmuggled),
            400);
  EXPECT_EQ(ReqStatus(PostHead("Transfer-Encoding:\r\n chunked\r\n") + "0\r\n\r\n"), 400);
  EXPECT_EQ(ReqStatus(PostHead("Transfer-Encoding: chunked\r\n\tx\r\n") + "0\r\n\r\n"), 400);
}

// S10: obs-fold in any header (SP or HTAB continuation, first or last header) → 400, also
// when the head arrives one byte at a time.
TEST(H1RequestTest, S10_ObsFoldInAnyHeader) {
  const std::vector<std::string> heads = {
      "GET / HTTP/1.1\r\nHost: a\r\nX-A: one\r\n two\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nX-A: one\r\n\ttwo\r\n\r\n",
      "GET / HTTP/1.1\r\nX-A: one\r\n two\r\nHost: a\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nX-A:\r\n two\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nX-A: v\r\n \r\n\r\n",  // whitespace-only fold line
      "GET / HTTP/1.1\r\nX-A: v\r\n\t\r\nHost: a\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nX-A:\r\n \r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\n\r\n x\r\n\r\n",
  };
  for (size_t i = 0; i + 1 < heads.size(); ++i) {
    EXPECT_EQ(ReqStatus(heads[i]), 400) << Printable(heads[i]);
    Driver d(Kind::kRequest);
    for (char c : heads[i]) {
      d.Feed(std::string_view(&c, 1));
    }
    EXPECT_EQ(d.error(), 400) << "byte at a time: " << Printable(heads[i]);
    EXPECT_TRUE(d.done().empty());
  }
  // After the empty line a SP starts the next message (bad request line), never a fold.
  auto d = Req(heads.back());
  ASSERT_EQ(d->done().size(), 1u);
  EXPECT_EQ(d->done()[0].head.Count("host"), 1);
}

// S11: HTTP/1.0 with Transfer-Encoding: chunked → 400.
TEST(H1RequestTest, S11_Http10WithTransferEncoding) {
  EXPECT_EQ(ReqStatus("POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "0\r\n\r\n" +
                      kSmuggled),
            400);
}

// S12/C3: bare LF as a line ending (request line, header, end of head) → 400.
TEST(H1RequestTest, S12_BareLf) {
  for (const char* head : {"GET / HTTP/1.1\nHost: a\n\n", "GET / HTTP/1.1\r\nHost: a\n\r\n",
                           "GET / HTTP/1.1\r\nHost: a\r\n\n", "GET / HTTP/1.1\nHost: a\r\n\r\n"}) {
    EXPECT_EQ(ReqStatus(head), 400) << Printable(head);
  }
}

// S13: a bare CR inside a value (hiding a second header) → 400.
TEST(H1RequestTest, S13_BareCrInValue) {
  EXPECT_EQ(ReqStatus(PostHead("X: a\rTransfer-Encoding: chunked\r\nContent-Length: 4\r\n") +
                      "0\r\n\r\n"),
            400);
  EXPECT_EQ(ReqStatus("GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n"), 400);
}

// S14/S15: NUL and every other CTL (0x01-0x08, 0x0B-0x1F except CR, 0x7F) in a value → 400;
// HTAB inside a value is allowed.
TEST(H1RequestTest, S14_S15_ControlCharactersInValue) {
  std::vector<int> ctls = {0x00};
  for (int c = 0x01; c <= 0x1F; ++c) {
    if (c != '\t' && c != '\n' && c != '\r') {
      ctls.push_back(c);
    }
  }
  ctls.push_back(0x7F);
  for (int c : ctls) {
    std::string head = "GET / HTTP/1.1\r\nHost: a\r\nX-Bad: a";
    head.push_back(static_cast<char>(c));
    head += "b\r\n\r\n";
    EXPECT_EQ(ReqStatus(head), 400) << "CTL 0x" << std::hex << c;
    // At the start and at the end of the value too.
    std::string lead = "GET / HTTP/1.1\r\nHost: a\r\nX-Bad: ";
    lead.push_back(static_cast<char>(c));
    lead += "b\r\n\r\n";
    EXPECT_EQ(ReqStatus(lead), 400) << "leading CTL 0x" << std::hex << c;
  }
  auto d = Req("GET / HTTP/1.1\r\nHost: a\r\nX-Tab: a\tb\r\n\r\n");
  ASSERT_EQ(d->error(), 0) << d->reason();
  ASSERT_EQ(d->done().size(), 1u);
  EXPECT_EQ(d->done()[0].head.Get("x-tab"), "a\tb");
}

// S16: an empty header name (before or after the framing headers) → 400.
TEST(H1RequestTest, S16_EmptyHeaderName) {
  EXPECT_EQ(ReqStatus("GET / HTTP/1.1\r\nHost: a\r\n: x\r\n\r\n"), 400);
  EXPECT_EQ(ReqStatus(PostHead(": x\r\nContent-Length: 2\r\n") + "ab"), 400);
  EXPECT_EQ(ReqStatus(PostHead("Content-Length: 2\r\n:\r\n") + "ab"), 400);
  EXPECT_EQ(ReqStatus(PostHead(":Transfer-Encoding: chunked\r\n") + "0\r\n\r\n"), 400);
}

// S17: invalid characters in a header name (space, space before the colon, '@', CTL, '"') → 400.
TEST(H1RequestTest, S17_InvalidHeaderNameCharacters) {
  for (std::string name : {"X Y"s, "Transfer-Encoding "s, "X@Y"s, "X\x01Y"s, "X\"Y"s, "X(Y)"s,
                           "X\x7fY"s, "X\x00Y"s, "\xc3\xa9"s}) {
    EXPECT_EQ(ReqStatus(PostHead(name + ": chunked\r\nContent-Length: 2\r\n") + "ab"), 400)
        << "name '" << Printable(name) << "'";
  }
}

// ============================================================================================
// Chunked bodies (C rows)

// C1: malformed chunk sizes → 400.
TEST(H1RequestTest, C1_MalformedChunkSize) {
  for (const char* size : {"0x2", "+2", "-1", " 2", "2 ", "2_0", "2;", "g", ""}) {
    EXPECT_EQ(ReqStatus(PostHead("Transfer-Encoding: chunked\r\n") + size + "\r\nab\r\n0\r\n\r\n"),
              400)
        << "chunk size '" << size << "'";
  }
}

// C2: a chunk size above the remaining body budget → 413, decided on the chunk header alone
// (before any chunk data arrives), including the 16-digit FFFFFFFFFFFFFFED.
TEST(H1RequestTest, C2_ChunkSizeOverBudget) {
  Limits limits;
  limits.body_bytes = 1 << 20;
  EXPECT_EQ(ReqStatus(PostHead("Transfer-Encoding: chunked\r\n") + "FFFFFFFFFFFFFFED\r\n", limits),
            413);
  EXPECT_EQ(ReqStatus(PostHead("Transfer-Encoding: chunked\r\n") + "100001\r\n", limits), 413);
  // The budget is what is left: 600 KiB passes, a second 600 KiB chunk does not.
  Driver d(Kind::kRequest, limits);
  d.Feed(PostHead("Transfer-Encoding: chunked\r\n") + "96000\r\n" + std::string(0x96000, 'x') +
         "\r\n");
  EXPECT_EQ(d.error(), 0) << d.reason();
  EXPECT_EQ(d.current().body.size(), 0x96000u);
  d.Feed("96000\r\n");
  EXPECT_EQ(d.error(), 413) << "second chunk over the remaining budget";
  // Exactly the budget is fine.
  auto ok = Req(PostHead("Transfer-Encoding: chunked\r\n") + "100000\r\n" +
                    std::string(0x100000, 'y') + "\r\n0\r\n\r\n",
                limits);
  EXPECT_EQ(ok->error(), 0) << ok->reason();
  ASSERT_EQ(ok->done().size(), 1u);
  EXPECT_EQ(ok->done()[0].body.size(), 0x100000u);
}

// C2: chunk sizes of 17+ hex digits exceed any budget → 413 as well (not accepted, not 400).
TEST(H1RequestTest, C2_SeventeenDigitChunkSize) {
  Limits limits;
  limits.body_bytes = 1 << 20;
  EXPECT_EQ(ReqStatus(PostHead("Transfer-Encoding: chunked\r\n") + "10000000000000000\r\n", limits),
            413);
  EXPECT_EQ(ReqStatus(PostHead("Transfer-Encoding: chunked\r\n") + "FFFFFFFFFFFFFFFFF\r\n", limits),
            413);
}

// Content-Length above the body limit → 413 at the head, before any body byte.
TEST(H1RequestTest, ContentLengthOverBodyLimit) {
  Limits limits;
  limits.body_bytes = 1000;
  EXPECT_EQ(ReqStatus(PostHead("Content-Length: 1001\r\n"), limits), 413);
  EXPECT_EQ(ReqStatus(PostHead("Content-Length: 18446744073709551615\r\n"), limits), 413);
  auto ok = Req(PostHead("Content-Length: 1000\r\n") + std::string(1000, 'z'), limits);
  EXPECT_EQ(ok->error(), 0);
  ASSERT_EQ(ok->done().size(), 1u);
}

// C3: bare LF after the chunk size, inside an extension, after chunk data, at the last chunk
// → 400.
TEST(H1RequestTest, C3_BareLfInChunkedBody) {
  for (const char* body : {"2\nab\r\n0\r\n\r\n", "2;a=b\nab\r\n0\r\n\r\n", "2\r\nab\n0\r\n\r\n",
                           "2\r\nab\r\n0\n\n", "2\r\nab\r\n0\r\n\n"}) {
    EXPECT_EQ(ReqStatus(PostHead("Transfer-Encoding: chunked\r\n") + body), 400) << Printable(body);
  }
}

// C4/C5: chunk data not followed by CRLF (garbage, or more data than the size) → 400.
TEST(H1RequestTest, C4_C5_ChunkDataNotFollowedByCrlf) {
  EXPECT_EQ(ReqStatus(PostHead("Transfer-Encoding: chunked\r\n") + "2\r\nabXX0\r\n\r\n"), 400);
  EXPECT_EQ(ReqStatus(PostHead("Transfer-Encoding: chunked\r\n") + "2\r\nabcd\r\n0\r\n\r\n"), 400);
}

// C6: a valid chunk extension is accepted (and not part of the body); a quoted extension with
// a LF → 400; an extension over 4 KiB → 400, one under it is fine.
TEST(H1RequestTest, C6_ChunkExtensions) {
  auto d = Req(PostHead("Transfer-Encoding: chunked\r\n") + "2;x=y\r\nab\r\n0\r\n\r\n");
  ASSERT_EQ(d->error(), 0) << d->reason();
  ASSERT_EQ(d->done().size(), 1u);
  EXPECT_EQ(d->done()[0].body, "ab");
  d = Req(PostHead("Transfer-Encoding: chunked\r\n") + "2;x=\"a b\"\r\nab\r\n0\r\n\r\n");
  EXPECT_EQ(d->error(), 0) << d->reason();
  EXPECT_EQ(
      ReqStatus(PostHead("Transfer-Encoding: chunked\r\n") + "2;x=\"a\nb\"\r\nab\r\n0\r\n\r\n"),
      400);
  EXPECT_EQ(ReqStatus(PostHead("Transfer-Encoding: chunked\r\n") +
                      "2;x=" + std::string(10 * 1024, 'e') + "\r\nab\r\n0\r\n\r\n"),
            400);
  EXPECT_EQ(ReqStatus(PostHead("Transfer-Encoding: chunked\r\n") + "2;" + std::string(5000, 'n') +
                      "\r\nab\r\n0\r\n\r\n"),
            400);
  // The same 10 KiB extension fed in small pieces is counted across pieces.
  Driver pieces(Kind::kRequest);
  pieces.Feed(PostHead("Transfer-Encoding: chunked\r\n") + "2;x=");
  for (int i = 0; i < 100; ++i) {
    pieces.Feed(std::string(100, 'e'));
  }
  pieces.Feed("\r\nab\r\n0\r\n\r\n");
  EXPECT_EQ(pieces.error(), 400);
  d = Req(PostHead("Transfer-Encoding: chunked\r\n") + "2;x=" + std::string(3000, 'e') +
          "\r\nab\r\n1;y=" + std::string(3000, 'f') + "\r\nc\r\n0\r\n\r\n");
  EXPECT_EQ(d->error(), 0) << "3000-byte extensions on two lines are under the per-line cap";
  ASSERT_EQ(d->done().size(), 1u);
  EXPECT_EQ(d->done()[0].body, "abc");
}

// ============================================================================================
// Request line, target, limits (R rows)

// R1: HTTP/0.9 (no version) → 400.
TEST(H1RequestTest, R1_Http09) {
  EXPECT_EQ(ReqStatus("GET /\r\n\r\n"), 400);
  EXPECT_EQ(ReqStatus("GET /\r\nHost: a\r\n\r\n"), 400);
  EXPECT_EQ(ReqStatus("GET / HTTP/0.9\r\nHost: a\r\n\r\n"), 400);
}

// R2: HTTP/2.0 (and other majors) → 505; a malformed version (HTTP/01.1) → 400.
TEST(H1RequestTest, R2_VersionChecks) {
  EXPECT_EQ(ReqStatus("GET / HTTP/2.0\r\nHost: a\r\n\r\n"), 505);
  EXPECT_EQ(ReqStatus("GET / HTTP/3.0\r\nHost: a\r\n\r\n"), 505);
  EXPECT_EQ(ReqStatus("GET / HTTP/01.1\r\nHost: a\r\n\r\n"), 400);
  EXPECT_EQ(ReqStatus("GET / HTTP/1.1x\r\nHost: a\r\n\r\n"), 400);
  EXPECT_EQ(ReqStatus("GET / http/1.1\r\nHost: a\r\n\r\n"), 400);
}

// R3: '#' in the request-target → 400.
TEST(H1RequestTest, R3_FragmentInTarget) {
  EXPECT_EQ(ReqStatus("GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
  EXPECT_EQ(ReqStatus("GET /a?x=1# HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
  EXPECT_EQ(ReqStatus("GET # HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
}

// R4: NUL, TAB, space, CTL or raw non-ASCII in the target → 400.
TEST(H1RequestTest, R4_BadCharactersInTarget) {
  for (std::string target : {"/a\x00"
                             "b"s,
                             "/a\tb"s, "/a b"s,
                             "/a\x01"
                             "b"s,
                             "/a\x7f"
                             "b"s,
                             "/\xc3\xa9"s, "/a\rb"s}) {
    EXPECT_EQ(ReqStatus("GET " + target + " HTTP/1.1\r\nHost: a\r\n\r\n"), 400)
        << "target '" << Printable(target) << "'";
  }
}

// R9: a request line over the header limit → 414, whether it arrives at once or in pieces.
TEST(H1RequestTest, R9_LongRequestLine) {
  const std::string line = "GET /" + std::string(20 * 1024, 'a') + " HTTP/1.1\r\nHost: a\r\n\r\n";
  EXPECT_EQ(ReqStatus(line), 414);
  Driver d(Kind::kRequest);
  for (size_t off = 0; off < line.size() && d.error() == 0; off += 1000) {
    d.Feed(std::string_view(line).substr(off, 1000));
  }
  EXPECT_EQ(d.error(), 414);
  // Just under the limit is fine.
  Limits limits;
  limits.header_bytes = 1024;
  const std::string fits = "GET /" + std::string(900, 'b') + " HTTP/1.1\r\nHost: a\r\n\r\n";
  EXPECT_EQ(ReqStatus(fits, limits), 0);
}

// R10: a header section over the limit (one huge header, or many) → 431, at once or in pieces.
TEST(H1RequestTest, R10_HeaderSectionTooLarge) {
  const std::string big =
      "GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + std::string(70 * 1024, 'h') + "\r\n\r\n";
  EXPECT_EQ(ReqStatus(big), 431);
  Driver d(Kind::kRequest);
  for (size_t off = 0; off < big.size() && d.error() == 0; off += 777) {
    d.Feed(std::string_view(big).substr(off, 777));
  }
  EXPECT_EQ(d.error(), 431);
  std::string many = "GET / HTTP/1.1\r\nHost: a\r\n";
  for (int i = 0; i < 90; ++i) {
    many += "X-H" + std::to_string(i) + ": " + std::string(200, 'v') + "\r\n";  // ~19 KB
  }
  many += "\r\n";
  EXPECT_EQ(ReqStatus(many), 431);
  // A long header name counts too.
  EXPECT_EQ(ReqStatus("GET / HTTP/1.1\r\nHost: a\r\n" + std::string(20000, 'N') + ": v\r\n\r\n"),
            431);
}

// R11: more headers than the count limit → 431; exactly the limit is fine.
TEST(H1RequestTest, R11_TooManyHeaders) {
  std::string head = "GET / HTTP/1.1\r\nHost: a\r\n";
  for (int i = 0; i < 199; ++i) {
    head += "X-" + std::to_string(i) + ": v\r\n";
  }
  EXPECT_EQ(ReqStatus(head + "\r\n"), 431);
  std::string ok = "GET / HTTP/1.1\r\nHost: a\r\n";
  for (int i = 0; i < 99; ++i) {
    ok += "X-" + std::to_string(i) + ": v\r\n";
  }
  EXPECT_EQ(ReqStatus(ok + "\r\n"), 0);
  EXPECT_EQ(ReqStatus(ok + "X-100: v\r\n\r\n"), 431);
}

// R12: a lowercase or unknown method → 400 or 501.
TEST(H1RequestTest, R12_BadMethods) {
  for (const char* line : {"get / HTTP/1.1", "FOO / HTTP/1.1", "G@T / HTTP/1.1"}) {
    const int st = ReqStatus(std::string(line) + "\r\nHost: a\r\n\r\n");
    EXPECT_TRUE(st == 400 || st == 501) << line << " → " << st;
  }
}

// An empty line where a request line should start is rejected, never taken as a message.
TEST(H1RequestTest, GarbageInsteadOfRequest) {
  EXPECT_EQ(ReqStatus("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"s), 400);  // TLS ClientHello
  EXPECT_EQ(ReqStatus("HTTP/1.1 200 OK\r\n\r\n"), 400);
}

// Once an error is reported, every later Next() reports it again; nothing more is parsed.
TEST(H1RequestTest, ErrorIsSticky) {
  H1Parser p(Kind::kRequest, Limits{});
  std::string buf = "GET /a#b HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
  EXPECT_EQ(p.Next(buf.data(), buf.size()).event, Event::kError);
  EXPECT_EQ(p.error_status(), 400);
  EXPECT_EQ(p.Next(buf.data(), buf.size()).event, Event::kError);
  EXPECT_EQ(p.error_status(), 400);
}

// ============================================================================================
// Responses (§3)

// A 200 with Content-Length: head, body, done; keep-alive, not must_close.
TEST(H1ResponseTest, ContentLengthResponse) {
  auto d = Resp("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello");
  ASSERT_EQ(d->error(), 0) << d->reason();
  ASSERT_EQ(d->done().size(), 1u);
  const Message& m = d->done()[0];
  EXPECT_EQ(m.head.status, 200);
  EXPECT_EQ(m.head.reason, "OK");
  EXPECT_EQ(m.head.framing, Framing::kContentLength);
  EXPECT_EQ(m.body, "hello");
  EXPECT_FALSE(m.must_close);
}

// A chunked response is decoded.
TEST(H1ResponseTest, ChunkedResponse) {
  auto d = Resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
  ASSERT_EQ(d->error(), 0) << d->reason();
  ASSERT_EQ(d->done().size(), 1u);
  EXPECT_EQ(d->done()[0].body, "abc");
  EXPECT_TRUE(d->done()[0].trailers.empty());
}

// A backend's trailer fields are kept for the client; a bad one is a bad response (502).
TEST(H1ResponseTest, ChunkedResponseTrailers) {
  using Fields = std::vector<std::pair<std::string, std::string>>;
  const std::string head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n";
  auto d = Resp(head + "Grpc-Status: 0\r\nGrpc-Message: ok\r\n\r\n");
  ASSERT_EQ(d->error(), 0) << d->reason();
  ASSERT_EQ(d->done().size(), 1u);
  EXPECT_EQ(d->done()[0].trailers, (Fields{{"Grpc-Status", "0"}, {"Grpc-Message", "ok"}}));
  EXPECT_EQ(Resp(head + "X-Bad: a\rb\r\n\r\n")->error(), 502);
  EXPECT_EQ(Resp(head + "X-Big: " + std::string(20000, 'v') + "\r\n\r\n")->error(), 502);
}

// B8: a response to HEAD with Content-Length has no body: kDone right after kHead, and the
// Content-Length value is kept for the client's head.
TEST(H1ResponseTest, HeadResponseHasNoBody) {
  Driver d(Kind::kResponse);
  d.parser().set_request_was_head(true);
  d.Feed("HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n");
  ASSERT_EQ(d.error(), 0) << d.reason();
  ASSERT_EQ(d.done().size(), 1u);
  EXPECT_EQ(d.done()[0].events, (std::vector<Event>{Event::kHead, Event::kDone}));
  EXPECT_EQ(d.done()[0].head.framing, Framing::kNone);
  EXPECT_EQ(d.done()[0].head.content_length, 1234u);
  EXPECT_TRUE(d.buffer().empty());
}

// B8 on a kept-alive upstream connection: after one complete response, the caller marks the
// next request as HEAD before its response arrives; that response still has no body.
TEST(H1ResponseTest, HeadResponseOnReusedParser) {
  Driver d(Kind::kResponse);
  d.Feed("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", /*stop_after_done=*/true);
  ASSERT_EQ(d.done().size(), 1u);
  d.parser().set_request_was_head(true);  // what UpstreamConn::Attach does for the next request
  d.Feed("HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n", /*stop_after_done=*/true);
  EXPECT_EQ(d.error(), 0) << d.reason();
  ASSERT_EQ(d.done().size(), 2u) << "the HEAD response waits for a 1234-byte body";
  EXPECT_EQ(d.done()[1].events, (std::vector<Event>{Event::kHead, Event::kDone}));
}

// B8: 204 and 304 with Content-Length have no body; the next response on the connection
// parses normally.
TEST(H1ResponseTest, NoBodyStatusesIgnoreContentLength) {
  for (const char* status : {"204 No Content", "304 Not Modified"}) {
    Driver d(Kind::kResponse);
    d.Feed("HTTP/1.1 "s + status + "\r\nContent-Length: 10\r\n\r\n", /*stop_after_done=*/true);
    ASSERT_EQ(d.error(), 0) << d.reason();
    ASSERT_EQ(d.done().size(), 1u) << status;
    EXPECT_EQ(d.done()[0].events, (std::vector<Event>{Event::kHead, Event::kDone}));
    EXPECT_EQ(d.done()[0].head.framing, Framing::kNone);
    EXPECT_TRUE(d.buffer().empty());
    d.Feed("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", /*stop_after_done=*/true);
    ASSERT_EQ(d.done().size(), 2u) << status;
    EXPECT_EQ(d.done()[1].body, "ok");
  }
}

// B10: 1xx responses are complete on their own (kHead, kDone, no body), and the final
// response follows on the same parser.
TEST(H1ResponseTest, InterimResponsesThenFinal) {
  auto d = Resp(
      "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
      "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
  ASSERT_EQ(d->error(), 0) << d->reason();
  ASSERT_EQ(d->done().size(), 3u);
  EXPECT_EQ(d->done()[0].head.status, 100);
  EXPECT_EQ(d->done()[0].events, (std::vector<Event>{Event::kHead, Event::kDone}));
  EXPECT_EQ(d->done()[1].head.status, 103);
  EXPECT_EQ(d->done()[2].head.status, 200);
  EXPECT_EQ(d->done()[2].body, "ok");
}

// B7: a status outside 100..599 (2000, 099, 600) → 502.
TEST(H1ResponseTest, B7_BadStatusCode) {
  EXPECT_EQ(Resp("HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n")->error(), 502);
  EXPECT_EQ(Resp("HTTP/1.1 099 X\r\nContent-Length: 0\r\n\r\n")->error(), 502);
  EXPECT_EQ(Resp("HTTP/1.1 600 X\r\nContent-Length: 0\r\n\r\n")->error(), 502);
  EXPECT_EQ(Resp("HTTP/1.1 20 OK\r\nContent-Length: 0\r\n\r\n")->error(), 502);
}

// B7: CL + TE, duplicate CL, NUL or CR in a value, obs-fold, garbage → 502.
TEST(H1ResponseTest, B7_BadFramingAndValues) {
  EXPECT_EQ(Resp("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "0\r\n\r\n")
                ->error(),
            502);
  EXPECT_EQ(Resp("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd")->error(),
            502);
  EXPECT_EQ(Resp("HTTP/1.1 200 OK\r\nX: a\x00"
                 "b\r\nContent-Length: 0\r\n\r\n"s)
                ->error(),
            502);
  EXPECT_EQ(Resp("HTTP/1.1 200 OK\r\nX: a\rb\r\nContent-Length: 0\r\n\r\n")->error(), 502);
  EXPECT_EQ(Resp("HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 0\r\n\r\n")->error(), 502);
  EXPECT_EQ(Resp("HTTP/1.1 200 OK\r\n: x\r\nContent-Length: 0\r\n\r\n")->error(), 502);
  EXPECT_EQ(Resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nabc")->error(), 502);
  EXPECT_EQ(Resp("garbage\r\n\r\n")->error(), 502);
  EXPECT_EQ(Resp("HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n")->error(), 502);
}

// B11: a response without length is close-delimited: its body runs until Finish(), which
// completes it (kDone) with must_close.
TEST(H1ResponseTest, CloseDelimitedBodyEndsAtFinish) {
  Driver d(Kind::kResponse);
  d.Feed("HTTP/1.1 200 OK\r\nX: y\r\n\r\nsome ");
  d.Feed("bytes");
  ASSERT_EQ(d.error(), 0) << d.reason();
  EXPECT_TRUE(d.done().empty());
  EXPECT_EQ(d.current().head.framing, Framing::kUntilClose);
  EXPECT_EQ(d.current().body, "some bytes");
  EXPECT_EQ(d.Finish().event, Event::kDone);
  ASSERT_EQ(d.done().size(), 1u);
  EXPECT_TRUE(d.done()[0].must_close);
  EXPECT_EQ(d.done()[0].body, "some bytes");
}

// B4: a Content-Length body cut short by the peer's close: Finish() → kError (502), never
// kDone. Also a close before any byte, and a close in the middle of a head or a chunked body.
TEST(H1ResponseTest, TruncatedBodyAtFinishIsError) {
  Driver d(Kind::kResponse);
  d.Feed("HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n0123456789");
  ASSERT_EQ(d.error(), 0);
  EXPECT_EQ(d.current().body, "0123456789");
  EXPECT_EQ(d.Finish().event, Event::kError);
  EXPECT_EQ(d.error(), 502);
  EXPECT_TRUE(d.done().empty());

  Driver empty(Kind::kResponse);
  EXPECT_EQ(empty.Finish().event, Event::kError);
  Driver half_head(Kind::kResponse);
  half_head.Feed("HTTP/1.1 200 OK\r\nContent-Le");
  EXPECT_EQ(half_head.Finish().event, Event::kError);
  Driver chunked(Kind::kResponse);
  chunked.Feed("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab");
  EXPECT_EQ(chunked.Finish().event, Event::kError);
}

// B9: bytes after a complete response stay unconsumed (consumed() stops at its end), so the
// caller can see them and refuse to pool the connection.
TEST(H1ResponseTest, ExtraBytesAfterResponseRemainUnconsumed) {
  const std::string resp = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
  const std::string buf = resp + "evil!";
  H1Parser p(Kind::kResponse, Limits{});
  std::vector<Event> events;
  std::string body;
  for (int guard = 0; guard < 20; ++guard) {
    const H1Parser::Step s = p.Next(buf.data(), buf.size());
    events.push_back(s.event);
    if (s.event == Event::kBody) {
      body.append(s.body);
    }
    if (s.event == Event::kDone || s.event == Event::kError || s.event == Event::kNeedMore) {
      break;
    }
  }
  EXPECT_EQ(events, (std::vector<Event>{Event::kHead, Event::kBody, Event::kDone}));
  EXPECT_EQ(body, "ok");
  EXPECT_EQ(p.consumed(), resp.size());
  EXPECT_EQ(buf.substr(p.consumed()), "evil!");
  // Same for a 304 with Content-Length: the "body" bytes are not consumed.
  const std::string r304 = "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n";
  const std::string buf304 = r304 + "evil!";
  H1Parser q(Kind::kResponse, Limits{});
  EXPECT_EQ(q.Next(buf304.data(), buf304.size()).event, Event::kHead);
  EXPECT_EQ(q.Next(buf304.data(), buf304.size()).event, Event::kDone);
  EXPECT_EQ(q.consumed(), r304.size());
}

// A response head fed one byte at a time parses the same, body included.
TEST(H1ResponseTest, ByteAtATime) {
  const std::string resp =
      "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n"
      "Content-Length: 9\r\n\r\nnot found";
  Driver d(Kind::kResponse);
  for (char c : resp) {
    d.Feed(std::string_view(&c, 1));
  }
  ASSERT_EQ(d.error(), 0) << d.reason();
  ASSERT_EQ(d.done().size(), 1u);
  EXPECT_EQ(d.done()[0].head.status, 404);
  EXPECT_EQ(d.done()[0].head.reason, "Not Found");
  EXPECT_EQ(d.done()[0].head.Get("content-type"), "text/plain");
  EXPECT_EQ(d.done()[0].body, "not found");
}

// ============================================================================================
// Helpers

// IsToken / IsCleanValue / EqualsIgnoreCase: the character classes the checks rely on.
TEST(H1HelpersTest, CharacterClasses) {
  EXPECT_TRUE(IsToken("Content-Length"));
  EXPECT_TRUE(IsToken("x!#$%&'*+-.^_`|~09"));
  EXPECT_FALSE(IsToken(""));
  EXPECT_FALSE(IsToken("a b"));
  EXPECT_FALSE(IsToken("a:b"));
  EXPECT_FALSE(IsToken("a@b"));
  EXPECT_FALSE(IsToken("\xc3\xa9"));
  EXPECT_TRUE(IsCleanValue("text/html; charset=utf-8"));
  EXPECT_TRUE(IsCleanValue("a\tb"));
  EXPECT_TRUE(IsCleanValue("\xc3\xa9"));  // obs-text is not a CTL
  EXPECT_FALSE(IsCleanValue("a\rb"));
  EXPECT_FALSE(IsCleanValue("a\nb"));
  EXPECT_FALSE(IsCleanValue("a\x00b"s));
  EXPECT_FALSE(IsCleanValue("a\x7f"));
  EXPECT_TRUE(EqualsIgnoreCase("Transfer-Encoding", "transfer-ENCODING"));
  EXPECT_FALSE(EqualsIgnoreCase("chunked", "chunked "));
  EXPECT_FALSE(EqualsIgnoreCase("a", "b"));
}

// IsCleanValue looks at eight bytes at a time: every byte value, at every position of values
// of 1 to 24 bytes (whole words, a tail, both), in a clean value of plain letters and in one
// of obs-text (0xFF: every high bit set), agrees with the byte-by-byte rule.
TEST(H1HelpersTest, CleanValueEveryByteEveryPosition) {
  for (char fill : {'a', '\xff', '\t'}) {
    for (size_t len = 1; len <= 24; ++len) {
      for (size_t at = 0; at < len; ++at) {
        for (int b = 0; b < 256; ++b) {
          std::string v(len, fill);
          v[at] = static_cast<char>(b);
          const bool clean = (b >= 0x20 || b == '\t') && b != 0x7F;
          ASSERT_EQ(IsCleanValue(v), clean) << "len " << len << " at " << at << " byte " << b;
        }
      }
    }
  }
}

}  // namespace
}  // namespace torii::http
