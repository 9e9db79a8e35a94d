// tests/dns/message_test.cc: the DNS response parser (dns/message.cc): answers, CNAME chains,
// TTLs, negative answers, SRV, and the malformed messages it must refuse without reading past
// the end.
#include "dns/message.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <string>
#include <vector>

namespace torii::dns {
namespace {

using Bytes = std::vector<uint8_t>;

constexpr uint16_t kResponse = 0x8180;  // QR, RD, RA, NOERROR
constexpr uint16_t kNxDomain = 0x8183;
constexpr uint16_t kA = 1, kCname = 5, kSoa = 6, kTxt = 16, kAaaa = 28, kSrv = 33, kOpt = 41;

// "a.b" as wire labels, ended by the root's zero or, with `ptr` ≥ 0, by a compression pointer
// to that offset.
Bytes Name(std::string_view dotted, int ptr = -1) {
  Bytes out;
  while (!dotted.empty()) {
    const size_t dot = dotted.find('.');
    const std::string_view label = dotted.substr(0, dot);
    out.push_back(static_cast<uint8_t>(label.size()));
    out.insert(out.end(), label.begin(), label.end());
    dotted = dot == std::string_view::npos ? std::string_view() : dotted.substr(dot + 1);
  }
  if (ptr >= 0) {
    out.push_back(static_cast<uint8_t>(0xC0 | (ptr >> 8)));
    out.push_back(static_cast<uint8_t>(ptr & 0xFF));
  } else {
    out.push_back(0);
  }
  return out;
}
Bytes Ptr(int offset) { return Name("", offset); }

void Put16(Bytes* out, uint32_t v) {
  out->push_back(static_cast<uint8_t>(v >> 8));
  out->push_back(static_cast<uint8_t>(v));
}
void Put32(Bytes* out, uint32_t v) {
  Put16(out, v >> 16);
  Put16(out, v & 0xFFFF);
}
void Append(Bytes* out, const Bytes& b) { out->insert(out->end(), b.begin(), b.end()); }

Bytes A(const char* text) {
  Bytes out(4);
  EXPECT_EQ(inet_pton(AF_INET, text, out.data()), 1);
  return out;
}
Bytes Aaaa(const char* text) {
  Bytes out(16);
  EXPECT_EQ(inet_pton(AF_INET6, text, out.data()), 1);
  return out;
}
Bytes Srv(uint16_t priority, uint16_t weight, uint16_t port, const Bytes& target) {
  Bytes out;
  Put16(&out, priority);
  Put16(&out, weight);
  Put16(&out, port);
  Append(&out, target);
  return out;
}
Bytes Soa(uint32_t minimum) {
  Bytes out = Name("ns.test");
  Append(&out, Name("hostmaster.test"));
  for (uint32_t v : {/*serial=*/1u, /*refresh=*/3600u, /*retry=*/600u, /*expire=*/86400u}) {
    Put32(&out, v);
  }
  Put32(&out, minimum);
  return out;
}

// Builds a message: the header (counts from what was added, unless Counts() overrides them),
// the question, then the records in the order added (callers add them section by section).
class Message {
 public:
  explicit Message(uint16_t flags = kResponse) : flags_(flags) {}

  Message& Question(const Bytes& name, uint16_t type, uint16_t cls = 1) {
    Append(&body_, name);
    Put16(&body_, type);
    Put16(&body_, cls);
    ++counts_[0];
    return *this;
  }
  Message& Answer(const Bytes& owner, uint16_t type, uint32_t ttl, const Bytes& rdata,
                  uint16_t cls = 1) {
    return Record(1, owner, type, ttl, rdata, cls);
  }
  Message& Authority(const Bytes& owner, uint16_t type, uint32_t ttl, const Bytes& rdata) {
    return Record(2, owner, type, ttl, rdata, 1);
  }
  Message& Additional(const Bytes& owner, uint16_t type, uint32_t ttl, const Bytes& rdata) {
    return Record(3, owner, type, ttl, rdata, 1);
  }
  Message& Raw(const Bytes& bytes) {
    Append(&body_, bytes);
    return *this;
  }
  Message& Counts(uint16_t qd, uint16_t an, uint16_t ns, uint16_t ar) {
    counts_[0] = qd;
    counts_[1] = an;
    counts_[2] = ns;
    counts_[3] = ar;
    return *this;
  }
  // The offset the next byte goes to (for compression pointers).
  int offset() const { return 12 + static_cast<int>(body_.size()); }

  Bytes Build() const {
    Bytes out;
    Put16(&out, /*id=*/0x1234);
    Put16(&out, flags_);
    for (uint16_t c : counts_) {
      Put16(&out, c);
    }
    Append(&out, body_);
    return out;
  }

 private:
  Message& Record(int section, const Bytes& owner, uint16_t type, uint32_t ttl, const Bytes& rdata,
                  uint16_t cls) {
    Append(&body_, owner);
    Put16(&body_, type);
    Put16(&body_, cls);
    Put32(&body_, ttl);
    Put16(&body_, static_cast<uint32_t>(rdata.size()));
    Append(&body_, rdata);
    ++counts_[section];
    return *this;
  }

  uint16_t flags_;
  uint16_t counts_[4] = {0, 0, 0, 0};
  Bytes body_;
};

constexpr int kQname = 12;  // the question's name, the usual target of a pointer

IpAddress Ip(const char* text) {
  IpAddress ip;
  ip.family = std::string_view(text).find(':') == std::string_view::npos ? AF_INET : AF_INET6;
  EXPECT_EQ(inet_pton(ip.family, text, ip.bytes.data()), 1);
  return ip;
}

std::vector<std::string> Texts(const Answer& a) {
  std::vector<std::string> out;
  for (const IpAddress& ip : a.addresses) {
    out.push_back(ip.ToString());
  }
  return out;
}

std::expected<Answer, std::string> Parse(const Bytes& msg, std::string_view name = "app.test",
                                         Type type = Type::kA) {
  return ParseAnswer(msg, name, type);
}

// The error of a parse that must fail ("" when it did not).
std::string ErrorOf(const std::expected<Answer, std::string>& r) {
  return r.has_value() ? std::string() : r.error();
}

// IpAddress::ToString is inet_ntop's form; an unset address prints as "".
TEST(DnsMessage, AddressText) {
  EXPECT_EQ(Ip("10.0.0.1").ToString(), "10.0.0.1");
  EXPECT_EQ(Ip("2001:db8::1").ToString(), "2001:db8::1");
  EXPECT_EQ(IpAddress{}.ToString(), "");
}

// A single A record (owner compressed to the question): its address and TTL.
TEST(DnsMessage, ARecord) {
  const Bytes msg =
      Message().Question(Name("app.test"), kA).Answer(Ptr(kQname), kA, 300, A("10.0.0.1")).Build();
  const auto r = Parse(msg);
  ASSERT_TRUE(r.has_value()) << r.error();
  EXPECT_FALSE(r->negative);
  EXPECT_FALSE(r->nxdomain);
  EXPECT_EQ(Texts(*r), std::vector<std::string>{"10.0.0.1"});
  EXPECT_EQ(r->addresses[0].family, AF_INET);
  EXPECT_TRUE(r->srv.empty());
  EXPECT_EQ(r->ttl, 300u);
}

// An AAAA answer gives AF_INET6 addresses; A records beside it are not of the type asked.
TEST(DnsMessage, AaaaRecord) {
  const Bytes msg = Message()
                        .Question(Name("app.test"), kAaaa)
                        .Answer(Ptr(kQname), kAaaa, 60, Aaaa("2001:db8::1"))
                        .Answer(Ptr(kQname), kA, 60, A("10.0.0.1"))
                        .Build();
  const auto r = Parse(msg, "app.test", Type::kAaaa);
  ASSERT_TRUE(r.has_value()) << r.error();
  EXPECT_EQ(Texts(*r), std::vector<std::string>{"2001:db8::1"});
  EXPECT_EQ(r->addresses[0].family, AF_INET6);
  EXPECT_EQ(r->ttl, 60u);
}

// Several records come back sorted and without duplicates; the TTL is the least of them.
TEST(DnsMessage, SortedAndDeduplicated) {
  const Bytes msg = Message()
                        .Question(Name("app.test"), kA)
                        .Answer(Ptr(kQname), kA, 300, A("10.0.0.3"))
                        .Answer(Ptr(kQname), kA, 200, A("10.0.0.1"))
                        .Answer(Ptr(kQname), kA, 300, A("10.0.0.3"))
                        .Answer(Ptr(kQname), kA, 400, A("10.0.0.2"))
                        .Build();
  const auto r = Parse(msg);
  ASSERT_TRUE(r.has_value()) << r.error();
  EXPECT_EQ(Texts(*r), (std::vector<std::string>{"10.0.0.1", "10.0.0.2", "10.0.0.3"}));
  EXPECT_EQ(r->ttl, 200u);
}

// A CNAME chain is followed from the query name (in any order in the answer section); only
// the records of the chain's last name count, and the TTL includes the CNAMEs'.
TEST(DnsMessage, CnameChain) {
  Message m;
  m.Question(Name("app.test"), kA);
  const int a_at = m.offset();
  m.Answer(Name("a.cdn.test"), kA, 300, A("10.0.0.9"));
  m.Answer(Name("other.test"), kA, 300, A("10.9.9.9"));  // not on the chain
  const int mid_at = m.offset();
  m.Answer(Name("mid.test"), kCname, 100, Ptr(a_at));
  m.Answer(Ptr(kQname), kCname, 500, Ptr(mid_at));
  const auto r = Parse(m.Build());
  ASSERT_TRUE(r.has_value()) << r.error();
  EXPECT_EQ(Texts(*r), std::vector<std::string>{"10.0.0.9"});
  EXPECT_EQ(r->ttl, 100u);  // the middle CNAME's
}

// The TTL is the least of every record used: here the final record's, below the CNAME's.
TEST(DnsMessage, TtlMinimumOverChain) {
  Message m;
  m.Question(Name("app.test"), kA);
  const int target_at = m.offset() + 12;  // the CNAME's rdata, after owner(2) + 10 bytes
  m.Answer(Ptr(kQname), kCname, 50, Name("b.test"));
  m.Answer(Ptr(target_at), kA, 40, A("10.0.0.1"));
  m.Answer(Ptr(target_at), kA, 70, A("10.0.0.2"));
  const auto r = Parse(m.Build());
  ASSERT_TRUE(r.has_value()) << r.error();
  EXPECT_EQ(r->addresses.size(), 2u);
  EXPECT_EQ(r->ttl, 40u);
}

// A TTL with the top bit set reads as 0 (RFC 2181 §8), also on a CNAME.
TEST(DnsMessage, TopBitTtlIsZero) {
  const Bytes direct = Message()
                           .Question(Name("app.test"), kA)
                           .Answer(Ptr(kQname), kA, 0x80000001u, A("10.0.0.1"))
                           .Answer(Ptr(kQname), kA, 300, A("10.0.0.2"))
                           .Build();
  EXPECT_EQ(Parse(direct)->ttl, 0u);
  Message m;
  m.Question(Name("app.test"), kA);
  const int target_at = m.offset() + 12;
  m.Answer(Ptr(kQname), kCname, 0xFFFFFFFFu, Name("b.test"));
  m.Answer(Ptr(target_at), kA, 300, A("10.0.0.1"));
  EXPECT_EQ(Parse(m.Build())->ttl, 0u);
}

// A chain of exactly 8 CNAMEs is followed; a 9th is refused, and so is a loop, without
// running on.
TEST(DnsMessage, CnameChainLimit) {
  const auto chain = [](int cnames) {
    Message m;
    m.Question(Name("app.test"), kA);
    m.Answer(Name("app.test"), kCname, 300, Name("c1.test"));
    for (int i = 1; i < cnames; ++i) {
      m.Answer(Name("c" + std::to_string(i) + ".test"), kCname, 300,
               Name("c" + std::to_string(i + 1) + ".test"));
    }
    m.Answer(Name("c" + std::to_string(cnames) + ".test"), kA, 300, A("10.0.0.1"));
    return m.Build();
  };
  const auto eight = Parse(chain(8));
  ASSERT_TRUE(eight.has_value()) << eight.error();
  EXPECT_EQ(Texts(*eight), std::vector<std::string>{"10.0.0.1"});
  EXPECT_NE(ErrorOf(Parse(chain(9))).find("CNAME"), std::string::npos);

  const Bytes loop = Message()
                         .Question(Name("app.test"), kA)
                         .Answer(Name("app.test"), kCname, 300, Name("b.test"))
                         .Answer(Name("b.test"), kCname, 300, Name("app.test"))
                         .Build();
  EXPECT_NE(ErrorOf(Parse(loop)).find("CNAME"), std::string::npos);
  const Bytes self = Message()
                         .Question(Name("app.test"), kA)
                         .Answer(Ptr(kQname), kCname, 300, Ptr(kQname))
                         .Build();
  EXPECT_FALSE(Parse(self).has_value());
}

// NXDOMAIN: negative, with the SOA's min(TTL, MINIMUM) from the authority section, either way
// round; records in the answer section are not used.
TEST(DnsMessage, NxDomainWithSoa) {
  const Bytes low_minimum = Message(kNxDomain)
                                .Question(Name("app.test"), kA)
                                .Authority(Name("test"), kSoa, 3600, Soa(/*minimum=*/60))
                                .Build();
  const auto r = Parse(low_minimum);
  ASSERT_TRUE(r.has_value()) << r.error();
  EXPECT_TRUE(r->negative);
  EXPECT_TRUE(r->nxdomain);
  EXPECT_TRUE(r->addresses.empty());
  EXPECT_EQ(r->ttl, 60u);

  const Bytes low_ttl = Message(kNxDomain)
                            .Question(Name("app.test"), kA)
                            .Answer(Ptr(kQname), kCname, 300, Name("gone.test"))
                            .Authority(Name("test"), kSoa, 30, Soa(/*minimum=*/900))
                            .Build();
  const auto r2 = Parse(low_ttl);
  ASSERT_TRUE(r2.has_value()) << r2.error();
  EXPECT_TRUE(r2->nxdomain);
  EXPECT_EQ(r2->ttl, 30u);

  const auto bare = Parse(Message(kNxDomain).Question(Name("app.test"), kA).Build());
  ASSERT_TRUE(bare.has_value());
  EXPECT_TRUE(bare->nxdomain);
  EXPECT_FALSE(bare->ttl.has_value());
}

// NODATA (NOERROR, no record of the type): negative but not NXDOMAIN; the TTL comes from the
// SOA when there is one, else nullopt.
TEST(DnsMessage, NoData) {
  const Bytes with_soa = Message()
                             .Question(Name("app.test"), kAaaa)
                             .Answer(Ptr(kQname), kA, 300, A("10.0.0.1"))
                             .Authority(Name("test"), kSoa, 120, Soa(/*minimum=*/600))
                             .Build();
  const auto r = Parse(with_soa, "app.test", Type::kAaaa);
  ASSERT_TRUE(r.has_value()) << r.error();
  EXPECT_TRUE(r->negative);
  EXPECT_FALSE(r->nxdomain);
  EXPECT_TRUE(r->addresses.empty());
  EXPECT_EQ(r->ttl, 120u);

  const auto bare = Parse(Message().Question(Name("app.test"), kA).Build());
  ASSERT_TRUE(bare.has_value()) << bare.error();
  EXPECT_TRUE(bare->negative);
  EXPECT_FALSE(bare->nxdomain);
  EXPECT_FALSE(bare->ttl.has_value());

  // A chain that ends at a name without records is NODATA too.
  const Bytes dangling = Message()
                             .Question(Name("app.test"), kA)
                             .Answer(Ptr(kQname), kCname, 300, Name("b.test"))
                             .Authority(Name("test"), kSoa, 45, Soa(/*minimum=*/45))
                             .Build();
  const auto d = Parse(dangling);
  ASSERT_TRUE(d.has_value()) << d.error();
  EXPECT_TRUE(d->negative);
  EXPECT_EQ(d->ttl, 45u);
}

// SRV records: priority, weight, port and a target compressed against the question, sorted,
// lowercased, without the trailing dot.
TEST(DnsMessage, SrvCompressedTarget) {
  const int app_test_at = kQname + 1 + 5 + 1 + 4;  // "_http._tcp." then "app.test"
  const Bytes msg = Message()
                        .Question(Name("_http._tcp.app.test"), kSrv)
                        .Answer(Ptr(kQname), kSrv, 300, Srv(10, 5, 8080, Name("Web2", app_test_at)))
                        .Answer(Ptr(kQname), kSrv, 200, Srv(10, 5, 8080, Name("web1", app_test_at)))
                        .Answer(Ptr(kQname), kSrv, 300, Srv(10, 5, 8080, Name("web2", app_test_at)))
                        .Build();
  const auto r = Parse(msg, "_http._tcp.app.test", Type::kSrv);
  ASSERT_TRUE(r.has_value()) << r.error();
  EXPECT_FALSE(r->negative);
  ASSERT_EQ(r->srv.size(), 2u);
  EXPECT_EQ(r->srv[0], (SrvTarget{10, 5, 8080, "web1.app.test"}));
  EXPECT_EQ(r->srv[1], (SrvTarget{10, 5, 8080, "web2.app.test"}));
  EXPECT_TRUE(r->addresses.empty());
  EXPECT_EQ(r->ttl, 200u);
}

// A single SRV record with target "." reads as NODATA with that record's TTL.
TEST(DnsMessage, SrvRootTarget) {
  const Bytes msg = Message()
                        .Question(Name("_http._tcp.app.test"), kSrv)
                        .Answer(Ptr(kQname), kSrv, 90, Srv(0, 0, 0, Name("")))
                        .Authority(Name("test"), kSoa, 3600, Soa(3600))
                        .Build();
  const auto r = Parse(msg, "_http._tcp.app.test", Type::kSrv);
  ASSERT_TRUE(r.has_value()) << r.error();
  EXPECT_TRUE(r->negative);
  EXPECT_FALSE(r->nxdomain);
  EXPECT_TRUE(r->srv.empty());
  EXPECT_EQ(r->ttl, 90u);
}

// An RCODE other than NOERROR / NXDOMAIN is an error that names it.
TEST(DnsMessage, ServerErrors) {
  EXPECT_NE(ErrorOf(Parse(Message(0x8182).Question(Name("app.test"), kA).Build())).find("SERVFAIL"),
            std::string::npos);
  EXPECT_NE(ErrorOf(Parse(Message(0x8185).Question(Name("app.test"), kA).Build())).find("REFUSED"),
            std::string::npos);
  // A failing server may echo no question at all.
  EXPECT_NE(ErrorOf(Parse(Message(0x8182).Build())).find("SERVFAIL"), std::string::npos);
  EXPECT_NE(ErrorOf(Parse(Message(0x818F).Question(Name("app.test"), kA).Build())).find("15"),
            std::string::npos);
}

// A query (QR clear) is not an answer.
TEST(DnsMessage, QrClear) {
  const Bytes msg = Message(0x0100)
                        .Question(Name("app.test"), kA)
                        .Answer(Ptr(kQname), kA, 300, A("10.0.0.1"))
                        .Build();
  EXPECT_NE(ErrorOf(Parse(msg)).find("QR"), std::string::npos);
}

// The question must be the query: name, type, class IN, and exactly one of it.
TEST(DnsMessage, QuestionMismatch) {
  const Bytes msg =
      Message().Question(Name("app.test"), kA).Answer(Ptr(kQname), kA, 300, A("10.0.0.1")).Build();
  EXPECT_NE(ErrorOf(Parse(msg, "other.test")).find("name"), std::string::npos);
  EXPECT_NE(ErrorOf(Parse(msg, "app.test.x")).find("name"), std::string::npos);
  EXPECT_NE(ErrorOf(Parse(msg, "app.test", Type::kAaaa)).find("type"), std::string::npos);
  EXPECT_FALSE(Parse(Message().Question(Name("app.test"), kA, /*cls=*/3).Build()).has_value());
  EXPECT_FALSE(Parse(Message().Build()).has_value());  // no question
  EXPECT_FALSE(
      Parse(Message().Question(Name("app.test"), kA).Question(Name("app.test"), kA).Build())
          .has_value());
  // A query name that is no name, and a type that is not asked for.
  EXPECT_FALSE(Parse(msg, "app..test").has_value());
  EXPECT_FALSE(Parse(msg, "app.test..").has_value());
  EXPECT_FALSE(Parse(msg, std::string(64, 'a') + ".test").has_value());
  EXPECT_FALSE(Parse(msg, "app.test", Type::kCname).has_value());
}

// Names compare ignoring ASCII case, with or without one trailing dot on the query.
TEST(DnsMessage, CaseInsensitiveNameAndTrailingDot) {
  const Bytes msg = Message()
                        .Question(Name("App.TEST"), kA)
                        .Answer(Name("app.test"), kA, 300, A("10.0.0.1"))
                        .Answer(Name("APP.test"), kA, 300, A("10.0.0.2"))
                        .Build();
  for (std::string_view name : {"app.test", "APP.TEST", "app.test.", "App.Test."}) {
    const auto r = Parse(msg, name);
    ASSERT_TRUE(r.has_value()) << name << ": " << r.error();
    EXPECT_EQ(r->addresses.size(), 2u) << name;
  }
}

// Records of a class other than IN are ignored, wherever they are.
TEST(DnsMessage, OtherClassIgnored) {
  const Bytes msg = Message()
                        .Question(Name("app.test"), kA)
                        .Answer(Ptr(kQname), kA, 300, A("10.0.0.1"), /*cls=*/3)
                        .Answer(Ptr(kQname), kCname, 300, Name("x.test"), /*cls=*/3)
                        .Answer(Ptr(kQname), kA, 5, Bytes{1, 2}, /*cls=*/255)  // not checked
                        .Answer(Ptr(kQname), kA, 300, A("10.0.0.2"))
                        .Build();
  const auto r = Parse(msg);
  ASSERT_TRUE(r.has_value()) << r.error();
  EXPECT_EQ(Texts(*r), std::vector<std::string>{"10.0.0.2"});
  EXPECT_EQ(r->ttl, 300u);
}

// Other types (TXT) and the additional section (OPT, glue) take no part in the answer.
TEST(DnsMessage, OtherRecordsIgnored) {
  const Bytes msg = Message()
                        .Question(Name("app.test"), kA)
                        .Answer(Ptr(kQname), kTxt, 1, Bytes{3, 'a', 'b', 'c'})
                        .Answer(Ptr(kQname), kA, 300, A("10.0.0.1"))
                        .Authority(Name("test"), kA, 1, A("10.0.0.53"))
                        .Additional(Ptr(kQname), kA, 1, A("10.0.0.7"))
                        .Additional(Name(""), kOpt, 0, Bytes{})
                        .Build();
  const auto r = Parse(msg);
  ASSERT_TRUE(r.has_value()) << r.error();
  EXPECT_EQ(Texts(*r), std::vector<std::string>{"10.0.0.1"});
  EXPECT_EQ(r->ttl, 300u);
}

// A valid message cut at any byte is an error, never a crash or a read past the end (ASan
// checks the latter: each prefix is copied into a buffer of its own size).
TEST(DnsMessage, TruncatedAtEveryOffset) {
  Message m;
  m.Question(Name("app.test"), kA);
  const int target_at = m.offset() + 12;
  m.Answer(Ptr(kQname), kCname, 50, Name("b", kQname + 4));
  m.Answer(Ptr(target_at), kA, 40, A("10.0.0.1"));
  m.Authority(Name("test"), kSoa, 30, Soa(60));
  m.Additional(Name(""), kOpt, 0, Bytes{});
  const Bytes msg = m.Build();
  ASSERT_TRUE(Parse(msg).has_value()) << Parse(msg).error();
  for (size_t n = 0; n < msg.size(); ++n) {
    const Bytes cut(msg.begin(), msg.begin() + static_cast<std::ptrdiff_t>(n));
    EXPECT_FALSE(Parse(cut).has_value()) << n;
  }
}

// A compression pointer to itself or to a later offset is refused (this rules loops out).
TEST(DnsMessage, CompressionPointerLoopAndForward) {
  // The question's name is a pointer to itself.
  EXPECT_NE(ErrorOf(Parse(Message().Question(Ptr(kQname), kA).Build())).find("pointer"),
            std::string::npos);
  // A label, then a pointer back to that label: backwards of the pointer, yet a loop.
  Message self_loop;
  self_loop.Question(Name("app.test"), kA);
  self_loop.Answer(Name("x", self_loop.offset()), kA, 300, A("10.0.0.1"));
  EXPECT_NE(ErrorOf(Parse(self_loop.Build())).find("pointer"), std::string::npos);
  // Two names pointing at each other: the first on to the second, the second back.
  Message mutual;
  mutual.Question(Name("app.test"), kA);
  const int first = mutual.offset();
  mutual.Answer(Name("x", first + 4 + 10 + 4), kA, 300, A("10.0.0.1"));
  mutual.Answer(Ptr(first), kA, 300, A("10.0.0.2"));
  EXPECT_NE(ErrorOf(Parse(mutual.Build())).find("pointer"), std::string::npos);
  // An answer whose owner points forward, into its own rdata.
  Message fwd;
  fwd.Question(Name("app.test"), kA);
  fwd.Answer(Ptr(fwd.offset() + 2 + 10), kCname, 300, Name("app.test"));
  EXPECT_NE(ErrorOf(Parse(fwd.Build())).find("pointer"), std::string::npos);
  // A pointer whose two bytes are cut by the end of the message.
  EXPECT_FALSE(Parse(Message().Raw(Bytes{0xC0}).Counts(1, 0, 0, 0).Build()).has_value());
}

// A label over 63 bytes (or of the reserved 0x40 / 0x80 types) and a name over 255 bytes are
// refused.
TEST(DnsMessage, LabelAndNameLimits) {
  Bytes long_label{64};
  long_label.insert(long_label.end(), 64, 'a');
  long_label.push_back(0);
  EXPECT_NE(ErrorOf(Parse(Message().Question(long_label, kA).Build(), "a")).find("63"),
            std::string::npos);
  EXPECT_FALSE(Parse(Message().Question(Bytes{0x80, 0}, kA).Build(), "a").has_value());

  // 63 + 63 + 63 + 61 and the length octets: 256 bytes with the root; 62 for the last fits.
  const std::string l63(63, 'a');
  const std::string longest = l63 + "." + l63 + "." + l63 + "." + std::string(61, 'a');
  const std::string too_long = l63 + "." + l63 + "." + l63 + "." + std::string(62, 'a');
  const auto ok =
      Parse(Message().Question(Name(longest), kA).Answer(Ptr(kQname), kA, 1, A("10.0.0.1")).Build(),
            longest);
  ASSERT_TRUE(ok.has_value()) << ok.error();
  EXPECT_NE(ErrorOf(Parse(Message().Question(Name(too_long), kA).Build(), "a")).find("255"),
            std::string::npos);
  // Too long only once a pointer adds the question's name to a long prefix.
  Message m;
  m.Question(Name(longest), kA);
  m.Answer(Name("abc", kQname), kA, 1, A("10.0.0.1"));
  EXPECT_NE(ErrorOf(Parse(m.Build(), longest)).find("255"), std::string::npos);
}

// Record data that runs past the end of the message, and A / AAAA / SRV / CNAME / SOA data of
// the wrong size, are refused.
TEST(DnsMessage, BadRecordData) {
  Bytes past =
      Message().Question(Name("app.test"), kA).Answer(Ptr(kQname), kA, 300, A("10.0.0.1")).Build();
  past[past.size() - 5] = 5;  // rdlength 5, four bytes left
  EXPECT_FALSE(Parse(past).has_value());

  const auto bad = [](uint16_t qtype, uint16_t type, const Bytes& rdata) {
    return Message().Question(Name("app.test"), qtype).Answer(Ptr(kQname), type, 1, rdata).Build();
  };
  EXPECT_FALSE(Parse(bad(kA, kA, Bytes{10, 0, 0})).has_value());
  EXPECT_FALSE(Parse(bad(kA, kA, Bytes{10, 0, 0, 1, 0})).has_value());
  EXPECT_FALSE(Parse(bad(kAaaa, kAaaa, A("10.0.0.1")), "app.test", Type::kAaaa).has_value());
  // An A record in an AAAA answer is still checked.
  EXPECT_FALSE(Parse(bad(kAaaa, kA, Aaaa("::1")), "app.test", Type::kAaaa).has_value());
  EXPECT_FALSE(Parse(bad(kSrv, kSrv, Bytes{0, 1, 0, 1, 0}), "app.test", Type::kSrv).has_value());
  Bytes srv_trailing = Srv(1, 1, 80, Name("a.test"));
  srv_trailing.push_back(0);
  EXPECT_FALSE(Parse(bad(kSrv, kSrv, srv_trailing), "app.test", Type::kSrv).has_value());
  Bytes srv_dot = Srv(1, 1, 80, Bytes{3, 'a', '.', 'b', 0});  // a '.' inside a label
  EXPECT_FALSE(Parse(bad(kSrv, kSrv, srv_dot), "app.test", Type::kSrv).has_value());
  Bytes cname_short = Name("b.test");
  cname_short.pop_back();
  EXPECT_FALSE(Parse(bad(kA, kCname, cname_short)).has_value());
  Bytes soa_short = Soa(60);
  soa_short.pop_back();
  EXPECT_FALSE(Parse(Message()
                         .Question(Name("app.test"), kA)
                         .Authority(Name("test"), kSoa, 60, soa_short)
                         .Build())
                   .has_value());
  // More records counted than there are.
  EXPECT_FALSE(Parse(Message()
                         .Question(Name("app.test"), kA)
                         .Answer(Ptr(kQname), kA, 1, A("10.0.0.1"))
                         .Counts(1, 2, 0, 0)
                         .Build())
                   .has_value());
}

// A message is at most 65535 bytes, and at least its 12-byte header.
TEST(DnsMessage, MessageSizeLimits) {
  Message m;
  m.Question(Name("app.test"), kA);
  m.Answer(Ptr(kQname), kA, 300, A("10.0.0.1"));
  Bytes big = m.Build();
  big.resize(65535);  // trailing bytes after every section are not read
  EXPECT_TRUE(Parse(big).has_value());
  big.push_back(0);
  EXPECT_FALSE(Parse(big).has_value());
  EXPECT_FALSE(Parse(Bytes{0x12, 0x34, 0x81, 0x80}).has_value());
  EXPECT_FALSE(Parse(Bytes{}).has_value());
}

}  // namespace
}  // namespace torii::dns
