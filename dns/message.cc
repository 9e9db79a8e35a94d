// dns/message.cc: see message.h.
//
// One pass over the message: the header, the question (checked against the query), then the
// answer and authority records, decoded into a small list; the additional section is only
// walked, so that a message cut short anywhere is an error. The CNAME chain is followed over
// that list afterwards, so the order of the records in the answer section does not matter.
//
// Names are kept in wire form (length-prefixed labels, lowercased, without the root's zero)
// while they are compared: a label that holds a '.' then cannot pass for two labels. Only an
// SRV target is turned into dotted text, the form the resolver asks for next.
//
// Left out: EDNS (an extended RCODE in an OPT record of the additional section is not read),
// DNSSEC, and the TC bit (c-ares retries a truncated answer over TCP before handing it over).
#include "dns/message.h"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <algorithm>
#include <limits>

#include "base/text.h"

namespace torii::dns {

namespace {

constexpr size_t kHeaderBytes = 12;
constexpr size_t kMaxMessageBytes = 65535;
// A name in wire form, its length octets and the root's zero included (RFC 1035 §2.3.4).
constexpr size_t kMaxNameBytes = 255;
constexpr size_t kMaxLabelBytes = 63;
constexpr int kMaxPointers = 128;
constexpr int kMaxCnames = 8;
constexpr uint16_t kClassIn = 1;
constexpr uint16_t kFlagResponse = 0x8000;
constexpr int kRcodeNoError = 0;
constexpr int kRcodeNxDomain = 3;

// Error texts (for the log).
constexpr const char* kTooLong = "DNS message over 65535 bytes";
constexpr const char* kNoHeader = "DNS message shorter than its header";
constexpr const char* kNotResponse = "DNS message is not a response (QR clear)";
constexpr const char* kQuestionCount = "DNS response does not hold exactly one question";
constexpr const char* kTruncated = "DNS message truncated";
constexpr const char* kNamePastEnd = "DNS name runs past the end of the message";
constexpr const char* kBadLabel = "DNS label over 63 bytes or of an unknown type";
constexpr const char* kNameTooLong = "DNS name over 255 bytes";
constexpr const char* kBadPointer = "DNS compression pointer does not point backwards";
constexpr const char* kTooManyPointers = "DNS name with over 128 compression pointers";
constexpr const char* kRdataPastEnd = "DNS record data runs past the end of the message";
constexpr const char* kBadRdata = "DNS record data does not match its type";
constexpr const char* kBadSrvTarget = "DNS SRV target with a '.' inside a label";
constexpr const char* kOtherName = "DNS response is for another name";
constexpr const char* kOtherType = "DNS response is for another type";
constexpr const char* kOtherClass = "DNS response is for a class other than IN";
constexpr const char* kBadQueryName = "DNS query name is not a valid name";
constexpr const char* kBadQueryType = "DNS query type is not A, AAAA or SRV";
constexpr const char* kLongChain = "DNS CNAME chain longer than 8";

std::unexpected<std::string> Fail(const char* what) { return std::unexpected(std::string(what)); }

// The text of an RCODE other than NOERROR / NXDOMAIN (RFC 1035 §4.1.1, RFC 2136 §2.2).
std::string RcodeText(int rcode) {
  static constexpr const char* kNames[] = {"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN",
                                           "NOTIMP",  "REFUSED", "YXDOMAIN", "YXRRSET",
                                           "NXRRSET", "NOTAUTH", "NOTZONE"};
  std::string out = "DNS server answered ";
  if (rcode >= 0 && rcode < static_cast<int>(std::size(kNames))) {
    out += kNames[rcode];
  } else {
    out += "RCODE ";
    base::AppendDecimal(&out, static_cast<uint64_t>(rcode));
  }
  return out;
}

// Big-endian loads; the caller has checked that the bytes are there.
uint16_t Load16(std::span<const uint8_t> msg, size_t at) {
  return static_cast<uint16_t>((msg[at] << 8) | msg[at + 1]);
}
uint32_t Load32(std::span<const uint8_t> msg, size_t at) {
  return (uint32_t{msg[at]} << 24) | (uint32_t{msg[at + 1]} << 16) | (uint32_t{msg[at + 2]} << 8) |
         uint32_t{msg[at + 3]};
}

// A TTL as a cache may use it: one with the top bit set reads as 0 (RFC 2181 §8).
uint32_t Ttl(uint32_t wire) { return (wire & 0x80000000u) != 0 ? 0 : wire; }

// Reads the name at *pos into *wire (lowercase wire form, see the file header) and moves *pos
// past the name's bytes in place (a compression pointer's two bytes, not what it points to).
// Refuses a name that runs past the end, a label over 63 bytes or of a reserved type (0x40,
// 0x80), a name over 255 bytes, a pointer that does not point before the bytes it was reached
// from, or over 128 pointers. Since every pointer must point before the start of the run of
// labels it ends, the offsets fall at each jump and no loop is possible; the limits on jumps
// and length bound the work besides. Returns nullptr, or the error text.
const char* ReadName(std::span<const uint8_t> msg, size_t* pos, std::string* wire) {
  wire->clear();
  size_t p = *pos;
  size_t run_start = p;  // where the labels being read began: a pointer must point before it
  size_t resume = 0;     // where *pos goes after the first pointer
  int pointers = 0;
  while (true) {
    if (p >= msg.size()) {
      return kNamePastEnd;
    }
    const uint8_t len = msg[p];
    if ((len & 0xC0) == 0xC0) {
      if (p + 1 >= msg.size()) {
        return kNamePastEnd;
      }
      const size_t target = (size_t{len & 0x3Fu} << 8) | msg[p + 1];
      if (target >= run_start) {
        return kBadPointer;
      }
      if (++pointers > kMaxPointers) {
        return kTooManyPointers;
      }
      if (pointers == 1) {
        resume = p + 2;
      }
      p = run_start = target;
      continue;
    }
    if (len > kMaxLabelBytes) {
      return kBadLabel;
    }
    if (len == 0) {
      *pos = pointers > 0 ? resume : p + 1;
      return nullptr;
    }
    if (msg.size() - p - 1 < len) {
      return kNamePastEnd;
    }
    // +1: the root's zero still to come.
    if (wire->size() + 1 + len + 1 > kMaxNameBytes) {
      return kNameTooLong;
    }
    wire->push_back(static_cast<char>(len));
    for (size_t i = 0; i < len; ++i) {
      wire->push_back(base::LowerAscii(static_cast<char>(msg[p + 1 + i])));
    }
    p += 1 + len;
  }
}

// `name` ("app.test", "App.Test.", "." or "") in lowercase wire form; false when it has an
// empty label, a label over 63 bytes or is over 255 bytes.
bool QueryNameToWire(std::string_view name, std::string* wire) {
  wire->clear();
  if (!name.empty() && name.back() == '.') {
    name.remove_suffix(1);
  }
  while (!name.empty()) {
    const size_t dot = name.find('.');
    const std::string_view label = name.substr(0, dot);
    if (label.empty() || label.size() > kMaxLabelBytes) {
      return false;
    }
    wire->push_back(static_cast<char>(label.size()));
    for (char c : label) {
      wire->push_back(base::LowerAscii(c));
    }
    if (dot == std::string_view::npos) {
      break;
    }
    name.remove_prefix(dot + 1);
    if (name.empty()) {
      return false;  // "a..": the one trailing dot is gone, this one ends an empty label
    }
  }
  return wire->size() + 1 <= kMaxNameBytes;
}

// A wire-form name as dotted text without the trailing dot ("" for the root); false when a
// label holds a '.', which the dotted form could not tell from two labels.
bool WireToDotted(std::string_view wire, std::string* out) {
  out->clear();
  size_t i = 0;
  while (i < wire.size()) {
    const size_t len = static_cast<uint8_t>(wire[i]);
    const std::string_view label = wire.substr(i + 1, len);
    if (label.find('.') != std::string_view::npos) {
      return false;
    }
    if (!out->empty()) {
      out->push_back('.');
    }
    out->append(label);
    i += 1 + len;
  }
  return true;
}

// One resource record of class IN and of a type in Type, decoded.
struct Record {
  std::string owner;  // wire form
  uint16_t type = 0;
  uint32_t ttl = 0;          // as Ttl() reads it
  IpAddress address;         // kA, kAaaa
  SrvTarget srv;             // kSrv
  std::string cname;         // kCname: the target, wire form
  uint32_t soa_minimum = 0;  // kSoa, as Ttl() reads it
};

// Reads the resource record at *pos and moves *pos past it. With `out` non-null, a record of
// class IN and a type in Type is decoded into *out and *decoded set; any other record is only
// checked to lie within the message. Refuses a bad owner name, a record past the end, and
// record data of a decoded type that does not have that type's form (A: 4 bytes, AAAA: 16,
// names that end exactly where the data does). Returns nullptr, or the error text.
const char* ReadRecord(std::span<const uint8_t> msg, size_t* pos, Record* out, bool* decoded) {
  std::string owner;
  if (const char* err = ReadName(msg, pos, &owner)) {
    return err;
  }
  size_t p = *pos;
  if (msg.size() - p < 10) {
    return kTruncated;
  }
  const uint16_t type = Load16(msg, p);
  const uint16_t cls = Load16(msg, p + 2);
  const uint32_t ttl = Ttl(Load32(msg, p + 4));
  const size_t rdlength = Load16(msg, p + 8);
  p += 10;
  if (msg.size() - p < rdlength) {
    return kRdataPastEnd;
  }
  const size_t rdata = p;
  const size_t rdata_end = p + rdlength;
  *pos = rdata_end;
  if (out == nullptr || cls != kClassIn) {
    return nullptr;
  }
  switch (static_cast<Type>(type)) {
    case Type::kA:
    case Type::kAaaa: {
      const size_t n = static_cast<Type>(type) == Type::kA ? 4 : 16;
      if (rdlength != n) {
        return kBadRdata;
      }
      out->address = IpAddress{};
      out->address.family = n == 4 ? AF_INET : AF_INET6;
      std::copy_n(msg.begin() + static_cast<std::ptrdiff_t>(rdata), n, out->address.bytes.begin());
      break;
    }
    case Type::kCname: {
      size_t q = rdata;
      if (const char* err = ReadName(msg, &q, &out->cname)) {
        return err;
      }
      if (q != rdata_end) {
        return kBadRdata;
      }
      break;
    }
    case Type::kSrv: {
      if (rdlength < 7) {
        return kBadRdata;
      }
      out->srv.priority = Load16(msg, rdata);
      out->srv.weight = Load16(msg, rdata + 2);
      out->srv.port = Load16(msg, rdata + 4);
      size_t q = rdata + 6;
      std::string target;
      if (const char* err = ReadName(msg, &q, &target)) {
        return err;
      }
      if (q != rdata_end) {
        return kBadRdata;
      }
      if (!WireToDotted(target, &out->srv.target)) {
        return kBadSrvTarget;
      }
      break;
    }
    case Type::kSoa: {
      size_t q = rdata;
      std::string ignored;
      for (int i = 0; i < 2; ++i) {  // MNAME, RNAME
        if (const char* err = ReadName(msg, &q, &ignored)) {
          return err;
        }
      }
      // SERIAL, REFRESH, RETRY, EXPIRE, MINIMUM.
      if (q > rdata_end || rdata_end - q != 20) {
        return kBadRdata;
      }
      out->soa_minimum = Ttl(Load32(msg, q + 16));
      break;
    }
    default:
      return nullptr;
  }
  out->owner = std::move(owner);
  out->type = type;
  out->ttl = ttl;
  *decoded = true;
  return nullptr;
}

// Reads `count` records at *pos; the decoded ones are appended to *records when it is
// non-null. Returns nullptr, or the error text.
const char* ReadSection(std::span<const uint8_t> msg, size_t* pos, uint16_t count,
                        std::vector<Record>* records) {
  Record record;
  for (uint16_t i = 0; i < count; ++i) {
    bool decoded = false;
    if (const char* err = ReadRecord(msg, pos, records != nullptr ? &record : nullptr, &decoded)) {
      return err;
    }
    if (decoded) {
      records->push_back(std::move(record));
      record = Record{};
    }
  }
  return nullptr;
}

// The negative caching time of the first SOA record among `authority` (RFC 2308 §5).
std::optional<uint32_t> NegativeTtl(const std::vector<Record>& authority) {
  for (const Record& r : authority) {
    if (r.type == static_cast<uint16_t>(Type::kSoa)) {
      return std::min(r.ttl, r.soa_minimum);
    }
  }
  return std::nullopt;
}

}  // namespace

std::string IpAddress::ToString() const {
  char buf[INET6_ADDRSTRLEN] = {};
  if ((family != AF_INET && family != AF_INET6) ||
      inet_ntop(family, bytes.data(), buf, sizeof(buf)) == nullptr) {
    return std::string();
  }
  return std::string(buf);
}

std::expected<Answer, std::string> ParseAnswer(std::span<const uint8_t> msg, std::string_view name,
                                               Type type) {
  if (type != Type::kA && type != Type::kAaaa && type != Type::kSrv) {
    return Fail(kBadQueryType);
  }
  std::string qname;
  if (!QueryNameToWire(name, &qname)) {
    return Fail(kBadQueryName);
  }
  if (msg.size() > kMaxMessageBytes) {
    return Fail(kTooLong);
  }
  if (msg.size() < kHeaderBytes) {
    return Fail(kNoHeader);
  }
  const uint16_t flags = Load16(msg, 2);
  if ((flags & kFlagResponse) == 0) {
    return Fail(kNotResponse);
  }
  // The RCODE comes before the question: a server that refuses or fails may not echo it.
  const int rcode = flags & 0x0F;
  if (rcode != kRcodeNoError && rcode != kRcodeNxDomain) {
    return std::unexpected(RcodeText(rcode));
  }
  if (Load16(msg, 4) != 1) {
    return Fail(kQuestionCount);
  }
  const uint16_t ancount = Load16(msg, 6);
  const uint16_t nscount = Load16(msg, 8);
  const uint16_t arcount = Load16(msg, 10);

  size_t pos = kHeaderBytes;
  std::string qowner;
  if (const char* err = ReadName(msg, &pos, &qowner)) {
    return Fail(err);
  }
  if (msg.size() - pos < 4) {
    return Fail(kTruncated);
  }
  if (qowner != qname) {
    return Fail(kOtherName);
  }
  if (Load16(msg, pos) != static_cast<uint16_t>(type)) {
    return Fail(kOtherType);
  }
  if (Load16(msg, pos + 2) != kClassIn) {
    return Fail(kOtherClass);
  }
  pos += 4;

  std::vector<Record> answers;
  std::vector<Record> authority;
  if (const char* err = ReadSection(msg, &pos, ancount, &answers)) {
    return Fail(err);
  }
  if (const char* err = ReadSection(msg, &pos, nscount, &authority)) {
    return Fail(err);
  }
  // The additional section is walked only so that a message cut short there is an error too.
  if (const char* err = ReadSection(msg, &pos, arcount, nullptr)) {
    return Fail(err);
  }

  Answer answer;
  if (rcode == kRcodeNxDomain) {
    answer.negative = true;
    answer.nxdomain = true;
    answer.ttl = NegativeTtl(authority);
    return answer;
  }

  // Follow the chain from the query name: stop at the first name that has records of the
  // type, or that has no CNAME. Records of the type on an earlier name of the chain would be
  // a broken zone (RFC 1034 §3.6.2: a CNAME has no other data) and are not read.
  const uint16_t wanted = static_cast<uint16_t>(type);
  const auto owns = [&](const std::string& owner, uint16_t t) {
    return std::any_of(answers.begin(), answers.end(),
                       [&](const Record& r) { return r.type == t && r.owner == owner; });
  };
  std::string current = qname;
  uint32_t chain_ttl = std::numeric_limits<uint32_t>::max();
  for (int cnames = 0; !owns(current, wanted); ++cnames) {
    const auto cname = std::find_if(answers.begin(), answers.end(), [&](const Record& r) {
      return r.type == static_cast<uint16_t>(Type::kCname) && r.owner == current;
    });
    if (cname == answers.end()) {
      break;
    }
    if (cnames == kMaxCnames) {
      return Fail(kLongChain);
    }
    chain_ttl = std::min(chain_ttl, cname->ttl);
    current = cname->cname;
  }

  uint32_t ttl = chain_ttl;
  uint32_t root_ttl = chain_ttl;  // over the SRV records whose target is "."
  bool any = false;
  for (Record& r : answers) {
    if (r.type != wanted || r.owner != current) {
      continue;
    }
    any = true;
    if (type == Type::kSrv) {
      if (r.srv.target.empty()) {
        root_ttl = std::min(root_ttl, r.ttl);
        continue;
      }
      answer.srv.push_back(std::move(r.srv));
    } else {
      answer.addresses.push_back(r.address);
    }
    ttl = std::min(ttl, r.ttl);
  }
  if (!any) {
    answer.negative = true;
    answer.ttl = NegativeTtl(authority);
    return answer;
  }
  if (type == Type::kSrv && answer.srv.empty()) {
    // Only "." targets (RFC 2782): the service is decidedly not available here; a "." beside
    // real targets is dropped.
    answer.negative = true;
    answer.ttl = root_ttl;
    return answer;
  }
  std::sort(answer.addresses.begin(), answer.addresses.end());
  answer.addresses.erase(std::unique(answer.addresses.begin(), answer.addresses.end()),
                         answer.addresses.end());
  std::sort(answer.srv.begin(), answer.srv.end());
  answer.srv.erase(std::unique(answer.srv.begin(), answer.srv.end()), answer.srv.end());
  answer.ttl = ttl;
  return answer;
}

}  // namespace torii::dns
