// tests/tls/ticket_keys_test.cc: TicketKeys (tls/ticket_keys.h) on its own (rotation, key
// files, concurrent readers) and session resumption through it: across sessions (workers),
// across rotations, across contexts sharing a key file, never across certificate groups (T6).
#include "tls/ticket_keys.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "tests/tls/tls_test_util.h"

namespace torii::tls {
namespace {

using testing::MakeServer;
using testing::Options;
using testing::Pki;
using testing::Pump;
using testing::RawClient;

using Name = std::span<const uint8_t, TicketKey::kNameSize>;

TicketKey KeyFilledWith(uint8_t byte) {
  std::array<uint8_t, TicketKey::kSize> bytes;
  bytes.fill(byte);
  bytes[TicketKey::kNameSize] = static_cast<uint8_t>(byte + 1);  // first HMAC byte
  return TicketKey::FromBytes(bytes);
}

std::string WriteKeyFile(const std::string& name, const std::vector<TicketKey>& keys) {
  const std::string path = Pki::Get().dir + "/" + name;
  std::ofstream out(path, std::ios::binary);
  for (const TicketKey& key : keys) {
    out.write(reinterpret_cast<const char*>(key.name.data()), key.name.size());
    out.write(reinterpret_cast<const char*>(key.hmac.data()), key.hmac.size());
    out.write(reinterpret_cast<const char*>(key.aes.data()), key.aes.size());
  }
  return path;
}

// A full handshake with `ctx` for `sni`, returning the ticket the client got (or nullptr).
SSL_SESSION* FirstTicket(const std::shared_ptr<const ServerContext>& ctx, const std::string& sni) {
  DownstreamSession server(ctx);
  RawClient client(sni);
  Pump(client, server);
  EXPECT_TRUE(server.handshake_done()) << server.failure_reason();
  EXPECT_FALSE(server.resumed());
  SSL_SESSION* session = client.TakeSession();
  if (session != nullptr && SSL_SESSION_has_ticket(session) != 1) {
    SSL_SESSION_free(session);
    return nullptr;
  }
  return session;
}

// Offers `session` to a new DownstreamSession; true when it resumed. The handshake must succeed
// either way. `next` receives the ticket issued by this handshake, if wanted.
bool Resumes(const std::shared_ptr<const ServerContext>& ctx, const std::string& sni,
             SSL_SESSION* session, SSL_SESSION** next = nullptr) {
  DownstreamSession server(ctx);
  RawClient client(sni);
  SSL_SESSION_up_ref(session);
  client.Resume(session);
  Pump(client, server);
  EXPECT_TRUE(server.handshake_done()) << server.failure_reason();
  EXPECT_TRUE(client.done());
  EXPECT_EQ(server.resumed(), client.resumed());
  if (next != nullptr) {
    *next = client.TakeSession();
  }
  return server.resumed();
}

// The first key encrypts; Find reports which key matched; unknown names match nothing.
TEST(TicketKeysTest, FixedKeys) {
  const TicketKey keys[] = {KeyFilledWith(1), KeyFilledWith(7)};
  auto made = TicketKeys::FromKeys(keys);
  ASSERT_TRUE(made.has_value());
  TicketKeys& tk = **made;
  EXPECT_EQ(tk.size(), 2u);
  EXPECT_FALSE(tk.rotates());
  TicketKey out;
  tk.EncryptionKey(&out);
  EXPECT_EQ(out.name, keys[0].name);
  EXPECT_EQ(out.hmac, keys[0].hmac);
  EXPECT_EQ(out.aes, keys[0].aes);
  EXPECT_EQ(tk.Find(Name(keys[0].name), &out), TicketKeys::Match::kCurrent);
  EXPECT_EQ(tk.Find(Name(keys[1].name), &out), TicketKeys::Match::kOld);
  EXPECT_EQ(out.hmac, keys[1].hmac);
  const TicketKey stranger = KeyFilledWith(9);
  EXPECT_EQ(tk.Find(Name(stranger.name), &out), TicketKeys::Match::kNone);
  EXPECT_FALSE(tk.Rotate(1'000'000'000));
  EXPECT_FALSE(tk.RotateNow());
  EXPECT_FALSE(TicketKeys::FromKeys({}).has_value());
}

// Rotate(now): the first call starts the clock; a rotation once the interval passed keeps
// the previous key for decryption; after a second, the oldest key is gone.
TEST(TicketKeysTest, RotationOnInterval) {
  auto made = TicketKeys::Generate(/*rotation_s=*/60);
  ASSERT_TRUE(made.has_value());
  TicketKeys& tk = **made;
  TicketKey first;
  tk.EncryptionKey(&first);
  EXPECT_FALSE(tk.Rotate(1000));    // starts the clock
  EXPECT_FALSE(tk.Rotate(60'999));  // 59.999 s later
  EXPECT_EQ(tk.size(), 1u);
  EXPECT_TRUE(tk.Rotate(61'000));
  EXPECT_EQ(tk.size(), 2u);
  TicketKey second, found;
  tk.EncryptionKey(&second);
  EXPECT_NE(second.name, first.name);
  EXPECT_EQ(tk.Find(Name(first.name), &found), TicketKeys::Match::kOld);
  EXPECT_EQ(found.aes, first.aes);
  EXPECT_FALSE(tk.Rotate(100'000));
  EXPECT_TRUE(tk.Rotate(121'000));
  EXPECT_EQ(tk.size(), 2u);
  EXPECT_EQ(tk.Find(Name(first.name), &found), TicketKeys::Match::kNone);
  EXPECT_EQ(tk.Find(Name(second.name), &found), TicketKeys::Match::kOld);
}

// rotation_s 0 never rotates.
TEST(TicketKeysTest, ZeroIntervalNeverRotates) {
  auto made = TicketKeys::Generate(0);
  ASSERT_TRUE(made.has_value());
  EXPECT_FALSE((*made)->Rotate(0));
  EXPECT_FALSE((*made)->Rotate(1ull << 40));
  EXPECT_EQ((*made)->size(), 1u);
}

// Key files: multiples of 80 bytes (up to kMaxKeys), errors name the file.
TEST(TicketKeysTest, KeyFileFormat) {
  const std::string good = WriteKeyFile("two.key", {KeyFilledWith(3), KeyFilledWith(4)});
  auto loaded = TicketKeys::LoadFile(good);
  ASSERT_TRUE(loaded.has_value()) << loaded.error();
  TicketKey out;
  (*loaded)->EncryptionKey(&out);
  EXPECT_EQ(out.name, KeyFilledWith(3).name);
  EXPECT_EQ((*loaded)->size(), 2u);

  const std::string bad = Pki::Get().dir + "/81.key";
  std::ofstream(bad, std::ios::binary) << std::string(81, 'x');
  auto refused = TicketKeys::LoadFile(bad);
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error(), "session_ticket_key_file " + bad +
                                 ": 81 bytes, expected 1 to 8 keys of 80 bytes (name 16 + HMAC "
                                 "32 + AES 32)");
  auto missing = TicketKeys::LoadFile(Pki::Get().dir + "/none.key");
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error(),
            "session_ticket_key_file " + Pki::Get().dir + "/none.key: cannot open");
}

// Readers racing a rotating writer always see a whole key (name and secrets from one key).
TEST(TicketKeysTest, ReadersSeeConsistentKeys) {
  auto made = TicketKeys::Generate(1);
  ASSERT_TRUE(made.has_value());
  std::shared_ptr<TicketKeys> tk = *made;
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> torn{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 2; ++t) {
    readers.emplace_back([&] {
      while (!stop.load()) {
        TicketKey key, again;
        tk->EncryptionKey(&key);
        // The same name must come with the same secrets, whenever it is read.
        if (tk->Find(Name(key.name), &again) != TicketKeys::Match::kNone &&
            (again.aes != key.aes || again.hmac != key.hmac)) {
          torn.fetch_add(1);
        }
      }
    });
  }
  for (int i = 0; i < 2000; ++i) {
    tk->RotateNow();
  }
  stop = true;
  for (auto& reader : readers) {
    reader.join();
  }
  EXPECT_EQ(torn.load(), 0u);
}

// A ticket from one DownstreamSession resumes on another (as on another worker), counted.
TEST(TicketResumptionTest, ResumesAcrossSessions) {
  auto ctx = MakeServer(Options({Pki::Get().a_ec}));
  ASSERT_NE(ctx, nullptr);
  SSL_SESSION* ticket = FirstTicket(ctx, "a.test");
  ASSERT_NE(ticket, nullptr);
  EXPECT_TRUE(Resumes(ctx, "a.test", ticket));
  EXPECT_TRUE(Resumes(ctx, "a.test", ticket));
  EXPECT_EQ(ctx->stats().full.load(), 1u);
  EXPECT_EQ(ctx->stats().resumed.load(), 2u);
  SSL_SESSION_free(ticket);
}

// After one rotation an old ticket still resumes (and is renewed); after two it falls back
// to a full handshake without error.
TEST(TicketResumptionTest, RotationFallsBackToFullHandshake) {
  auto keys = TicketKeys::Generate(3600);
  ASSERT_TRUE(keys.has_value());
  auto ctx = MakeServer(Options({Pki::Get().a_ec}), *keys);
  ASSERT_NE(ctx, nullptr);
  EXPECT_EQ(ctx->ticket_keys(), *keys);
  SSL_SESSION* ticket = FirstTicket(ctx, "a.test");
  ASSERT_NE(ticket, nullptr);
  ASSERT_TRUE((*keys)->RotateNow());
  SSL_SESSION* renewed = nullptr;
  EXPECT_TRUE(Resumes(ctx, "a.test", ticket, &renewed));
  ASSERT_NE(renewed, nullptr);
  ASSERT_TRUE((*keys)->RotateNow());
  EXPECT_FALSE(Resumes(ctx, "a.test", ticket));  // two rotations old
  EXPECT_TRUE(Resumes(ctx, "a.test", renewed));  // issued under the previous key
  EXPECT_EQ(ctx->stats().total_failures(), 0u);
  SSL_SESSION_free(ticket);
  SSL_SESSION_free(renewed);
}

// T6 (nginx CVE-2025-23419): a ticket issued under SNI a.test is not resumed when offered
// with SNI b.test, served by another certificate; it still resumes under a.test, and under
// another name of a.test's own certificate.
TEST(TicketResumptionTest, NoResumptionAcrossCertificates) {
  auto ctx = MakeServer(Options({Pki::Get().a_ec, Pki::Get().b_ec}));
  ASSERT_NE(ctx, nullptr);
  SSL_SESSION* ticket = FirstTicket(ctx, "a.test");
  ASSERT_NE(ticket, nullptr);
  EXPECT_FALSE(Resumes(ctx, "b.test", ticket));
  EXPECT_FALSE(Resumes(ctx, "x.b-wild.test", ticket));
  EXPECT_TRUE(Resumes(ctx, "a.test", ticket));
  EXPECT_TRUE(Resumes(ctx, "www.a.test", ticket));
  SSL_SESSION_free(ticket);
  // And the other way round.
  SSL_SESSION* b_ticket = FirstTicket(ctx, "b.test");
  ASSERT_NE(b_ticket, nullptr);
  EXPECT_FALSE(Resumes(ctx, "a.test", b_ticket));
  EXPECT_FALSE(Resumes(ctx, "", b_ticket));  // no SNI: the default (a) group
  SSL_SESSION_free(b_ticket);
}

// Two contexts (two processes, or before and after a reload) reading one key file resume
// each other's tickets; a context whose file lists that key second resumes too.
TEST(TicketResumptionTest, SharedKeyFileAcrossContexts) {
  const TicketKey k1 = KeyFilledWith(21), k2 = KeyFilledWith(42);
  ServerOptions options = Options({Pki::Get().a_ec, Pki::Get().a_rsa()});
  options.session_ticket_key_file = WriteKeyFile("shared.key", {k1});
  auto first = MakeServer(options);
  auto second = MakeServer(options);
  ASSERT_NE(first, nullptr);
  ASSERT_NE(second, nullptr);
  SSL_SESSION* ticket = FirstTicket(first, "a.test");
  ASSERT_NE(ticket, nullptr);
  EXPECT_TRUE(Resumes(second, "a.test", ticket));
  options.session_ticket_key_file = WriteKeyFile("rolled.key", {k2, k1});
  auto rolled = MakeServer(options);
  ASSERT_NE(rolled, nullptr);
  EXPECT_TRUE(Resumes(rolled, "a.test", ticket));
  options.session_ticket_key_file = WriteKeyFile("other.key", {k2});
  auto other = MakeServer(options);
  ASSERT_NE(other, nullptr);
  EXPECT_FALSE(Resumes(other, "a.test", ticket));
  // Contexts with their own random keys do not share tickets.
  auto random = MakeServer(Options({Pki::Get().a_ec, Pki::Get().a_rsa()}));
  EXPECT_FALSE(Resumes(random, "a.test", ticket));
  SSL_SESSION_free(ticket);
}

// Keys a fleet shares (session_ticket_keys = "redis"): a random key of the process's own until
// the fleet's set is installed; Replace swaps the whole set (the first encrypts), so a ticket
// made under the fleet's key resumes on another context that installed the same set, and one
// made before under the process's own key no longer does. Never rotated here.
TEST(TicketResumptionTest, SharedKeysAreReplacedByTheFleetsSet) {
  ServerOptions options = Options({Pki::Get().a_ec, Pki::Get().a_rsa()});
  options.shared_ticket_keys = "https";
  options.ticket_rotation_s = 600;
  auto first = MakeServer(options);
  auto second = MakeServer(options);
  ASSERT_NE(first, nullptr);
  ASSERT_NE(second, nullptr);
  TicketKeys& a = *first->ticket_keys();
  TicketKeys& b = *second->ticket_keys();
  EXPECT_EQ(a.shared_name(), "https");
  EXPECT_EQ(a.slot_s(), 600u);
  EXPECT_FALSE(a.rotates());
  EXPECT_FALSE(a.Rotate(1'000'000'000));
  SSL_SESSION* own = FirstTicket(first, "a.test");
  ASSERT_NE(own, nullptr);
  EXPECT_FALSE(Resumes(second, "a.test", own)) << "two processes' own keys differ";
  const TicketKey fleet[] = {KeyFilledWith(3), KeyFilledWith(4), KeyFilledWith(5)};
  ASSERT_TRUE(a.Replace(fleet));
  ASSERT_TRUE(b.Replace(fleet));
  EXPECT_EQ(a.size(), 3u);
  EXPECT_FALSE(Resumes(first, "a.test", own)) << "the process's own key went";
  SSL_SESSION* shared = FirstTicket(first, "a.test");
  ASSERT_NE(shared, nullptr);
  EXPECT_TRUE(Resumes(second, "a.test", shared));
  // The next turn: the former current key decrypts still.
  const TicketKey turned[] = {KeyFilledWith(4), KeyFilledWith(6), KeyFilledWith(3)};
  ASSERT_TRUE(b.Replace(turned));
  EXPECT_TRUE(Resumes(second, "a.test", shared));
  TicketKey out;
  b.EncryptionKey(&out);
  EXPECT_EQ(out.name, turned[0].name);
  EXPECT_FALSE(b.Replace({}));
  EXPECT_EQ(b.size(), 3u);
  SSL_SESSION_free(own);
  SSL_SESSION_free(shared);
}

// session_tickets = false: no ticket is issued, nothing resumes.
TEST(TicketResumptionTest, TicketsCanBeDisabled) {
  ServerOptions options = Options({Pki::Get().a_ec});
  options.session_tickets = false;
  auto ctx = MakeServer(options);
  ASSERT_NE(ctx, nullptr);
  EXPECT_EQ(ctx->ticket_keys(), nullptr);
  EXPECT_EQ(FirstTicket(ctx, "a.test"), nullptr);
}

}  // namespace
}  // namespace torii::tls
